"""The ``audit_log`` table (migration ``governance_0001``; append-only by trigger)."""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("entity_kind", sa.String(60), nullable=False),
    sa.Column("entity_id", sa.String(200), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_entity", "entity_kind", "entity_id"),
    sa.Index("ix_audit_log_actor", "actor"),
    sa.Index("ix_audit_log_correlation_id", "correlation_id"),
)
