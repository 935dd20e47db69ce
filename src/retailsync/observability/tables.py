"""Tables of observability, created by migration ``observability_0001``; keep both in step.

``trace_records`` holds every hop the hub observed outside the event store (an inbound
message, a workflow step, an outbound call, an exception, events on backends without a SQL
event store); ``alerts_sent`` remembers each SLA alert once per breach.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)

trace_records = sa.Table(
    "trace_records",
    metadata,
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
    sa.UniqueConstraint("hop_key", name="uq_trace_records_hop_key"),
    sa.Index("ix_trace_records_correlation_id_at", "correlation_id", "at"),
    sa.Index("ix_trace_records_order_id", "order_id"),
    sa.Index("ix_trace_records_case_id", "case_id"),
    sa.Index("ix_trace_records_kind_at", "kind", "at"),
)

alerts_sent = sa.Table(
    "alerts_sent",
    metadata,
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
    sa.UniqueConstraint("sla", "item", "breach_window", name="uq_alerts_sent_sla_item_window"),
    sa.Index("ix_alerts_sent_status_raised_at", "status", "raised_at"),
)
