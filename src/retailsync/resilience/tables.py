"""Tables of the resilience layer (created by migration ``resilience_0001``)."""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

#: Writes that could not be sent while a downstream was failing, drained once it recovers.
deferred_writes = sa.Table(
    "deferred_writes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("downstream", sa.String(64), nullable=False),
    sa.Column("operation", sa.String(128), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("lane", sa.String(16), nullable=False, server_default="batch"),
    # pending -> sending -> sent | failed (business refusal, for a person to resolve)
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
    sa.UniqueConstraint("downstream", "idempotency_key"),
    sa.Index("ix_deferred_writes_downstream_status", "downstream", "status", "id"),
)

#: One token bucket per downstream, shared by every process in scale-out mode.
rate_buckets = sa.Table(
    "resilience_rate_buckets",
    metadata,
    sa.Column("downstream", sa.String(64), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("capacity", sa.Float, nullable=False),
    sa.Column("rate", sa.Float, nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
