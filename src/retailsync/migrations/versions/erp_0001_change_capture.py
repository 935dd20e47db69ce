"""ERP connector: change-capture cursor and last state seen per ERP record.

Revision ID: erp_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "erp_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erp_poll_cursor",
        sa.Column("poller", sa.String(60), nullable=False),
        sa.Column("model", sa.String(60), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=False), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("poller", "model", name="pk_erp_poll_cursor"),
    )
    op.create_table(
        "erp_poll_seen",
        sa.Column("poller", sa.String(60), nullable=False),
        sa.Column("model", sa.String(60), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("poller", "model", "record_id", name="pk_erp_poll_seen"),
    )


def downgrade() -> None:
    op.drop_table("erp_poll_seen")
    op.drop_table("erp_poll_cursor")
