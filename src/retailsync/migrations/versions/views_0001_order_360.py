"""The order 360 read model: orders and the parts that hang off them.

Revision ID: views_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "views_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "views_orders",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.BigInteger),
        sa.Column("status", sa.String(40)),
        sa.Column("document", sa.Text),
        sa.Column("status_reason", sa.String(200)),
        sa.Column("status_changed_at", When),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("erp_snapshot", sa.Text),
        sa.Column("erp_checked_at", When),
        sa.Column("erp_failed_at", When),
        sa.Column("erp_failure", sa.Text),
    )
    op.create_table(
        "views_order_parts",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("entity_id", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(100)),
        sa.Column("rma_id", sa.String(100)),
        sa.Column("case_id", sa.String(100)),
        sa.Column("version", sa.BigInteger),
        sa.Column("status", sa.String(40)),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_index("ix_views_order_parts_order_id", "views_order_parts", ["order_id"])
    op.create_index("ix_views_order_parts_rma_id", "views_order_parts", ["rma_id"])
    op.create_index("ix_views_order_parts_case_id", "views_order_parts", ["case_id"])


def downgrade() -> None:
    op.drop_table("views_order_parts")
    op.drop_table("views_orders")
