"""Foundation: the cross-reference table mapping canonical ids to each system's ids.

Revision ID: 0001_foundation
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xref",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(40), nullable=False),
        sa.Column("canonical_id", sa.String(100), nullable=False),
        sa.Column("system", sa.String(60), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("system", "entity_kind", "external_id", name="uq_xref_external"),
        sa.UniqueConstraint("system", "entity_kind", "canonical_id", name="uq_xref_canonical"),
    )
    op.create_index("ix_xref_canonical_id", "xref", ["canonical_id"])


def downgrade() -> None:
    op.drop_index("ix_xref_canonical_id", table_name="xref")
    op.drop_table("xref")
