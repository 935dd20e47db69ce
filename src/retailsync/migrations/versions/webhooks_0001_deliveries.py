"""Webhook ingress: one row per vendor delivery (replay protection) and a rejection audit.

Revision ID: webhooks_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "webhooks_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(60), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("raw_body", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint(
            "connector", "delivery_id", name="uq_webhook_deliveries_connector_delivery"
        ),
    )
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])
    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(60), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.String(100), nullable=True),
        sa.Column("headers_digest", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_rejections_at", "webhook_rejections", ["at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_rejections_at", table_name="webhook_rejections")
    op.drop_table("webhook_rejections")
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
