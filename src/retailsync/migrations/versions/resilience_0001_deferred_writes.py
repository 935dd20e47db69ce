"""Resilience: durably deferred writes and the shared token buckets for rate limits.

Revision ID: resilience_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "resilience_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deferred_writes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("downstream", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("lane", sa.String(16), nullable=False, server_default="batch"),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("claim_token", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deferred_writes"),
        sa.UniqueConstraint(
            "downstream", "idempotency_key", name="uq_deferred_writes_downstream_idempotency_key"
        ),
    )
    op.create_index(
        "ix_deferred_writes_downstream_status",
        "deferred_writes",
        ["downstream", "status", "id"],
    )
    op.create_table(
        "resilience_rate_buckets",
        sa.Column("downstream", sa.String(64), nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("capacity", sa.Float, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("downstream", name="pk_resilience_rate_buckets"),
    )


def downgrade() -> None:
    op.drop_table("resilience_rate_buckets")
    op.drop_index("ix_deferred_writes_downstream_status", table_name="deferred_writes")
    op.drop_table("deferred_writes")
