"""Observability: the durable trace store and the record of SLA alerts sent.

Revision ID: observability_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "observability_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trace_records",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("correlation_id", sa.String(200)),
        sa.Column("order_id", sa.String(100)),
        sa.Column("case_id", sa.String(100)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("system", sa.String(60), nullable=False),
        sa.Column("operation", sa.String(200), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("attempt", sa.Integer),
        sa.Column("causation_id", sa.String(200)),
        sa.Column("hop_key", sa.String(300)),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", When, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_trace_records"),
        sa.UniqueConstraint("hop_key", name="uq_trace_records_hop_key"),
    )
    op.create_index("ix_trace_records_correlation_id_at", "trace_records", ["correlation_id", "at"])
    op.create_index("ix_trace_records_order_id", "trace_records", ["order_id"])
    op.create_index("ix_trace_records_case_id", "trace_records", ["case_id"])
    op.create_index("ix_trace_records_kind_at", "trace_records", ["kind", "at"])
    op.create_table(
        "alerts_sent",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sla", sa.String(100), nullable=False),
        sa.Column("item", sa.String(300), nullable=False),
        sa.Column("breach_window", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("correlation_id", sa.String(200)),
        sa.Column("trace_url", sa.String(1000), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("sinks", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("raised_at", When, nullable=False),
        sa.Column("delivered_at", When),
        sa.PrimaryKeyConstraint("id", name="pk_alerts_sent"),
        sa.UniqueConstraint("sla", "item", "breach_window", name="uq_alerts_sent_sla_item_window"),
    )
    op.create_index("ix_alerts_sent_status_raised_at", "alerts_sent", ["status", "raised_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_sent_status_raised_at", table_name="alerts_sent")
    op.drop_table("alerts_sent")
    for index in (
        "ix_trace_records_kind_at",
        "ix_trace_records_case_id",
        "ix_trace_records_order_id",
        "ix_trace_records_correlation_id_at",
    ):
        op.drop_index(index, table_name="trace_records")
    op.drop_table("trace_records")
