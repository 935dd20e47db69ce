"""The bus's tables (SQLAlchemy Core), created by migration ``bus_0001``.

Producer side (SQL backend only): ``bus_events`` (the append-only store, global sequence,
dedup on source + id), ``bus_subscriptions``, ``bus_cursors`` (per subscriber and shard: the
sequence up to which the shard's events have been dealt with — delivered, parked or not
selected; it may lie past the shard's own last event — and the lease of the worker that owns
the shard), ``bus_workers``
(heartbeats) and ``bus_parked`` (events waiting for a retry, or held behind a failing event of
the same key). Consumer side (every backend): ``bus_inbox`` (the idempotent-consumer record),
``bus_entity_versions``, ``bus_exceptions`` and ``bus_exception_actions`` (audit).
JetStream backend only (migration ``bus_0002``): ``bus_partition_leases`` (which worker pulls
a (subscription, partition) consumer, per namespace) and ``bus_partition_workers`` (the live
workers of a namespace, for a fair share of partitions).
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)

events = sa.Table(
    "bus_events",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(500)),
    sa.Column("partition_key", sa.String(500), nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("correlation_id", sa.String(200)),
    sa.Column("entity_version", sa.BigInteger),
    sa.Column("time", When, nullable=False),
    sa.Column("stored_at", When, nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.UniqueConstraint("source", "event_id", name="uq_bus_events_source_event_id"),
    sa.Index("ix_bus_events_shard_seq", "shard", "seq"),
    sa.Index("ix_bus_events_partition_key", "partition_key"),
    sa.Index("ix_bus_events_correlation_id", "correlation_id"),
)

subscriptions = sa.Table(
    "bus_subscriptions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("filter", sa.Text, nullable=False),
    sa.Column("downstream", sa.String(100)),
    sa.Column("created_at", When, nullable=False),
    sa.Column("updated_at", When, nullable=False),
)

cursors = sa.Table(
    "bus_cursors",
    metadata,
    sa.Column("subscriber", sa.String(100), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.String(200)),
    sa.Column("lease_expires_at", When),
)

workers = sa.Table(
    "bus_workers",
    metadata,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", When, nullable=False),
    sa.Column("heartbeat_at", When, nullable=False),
)

partition_leases = sa.Table(
    "bus_partition_leases",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("subscriber", sa.String(100), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(200)),
    sa.Column("lease_expires_at", When),
)

partition_workers = sa.Table(
    "bus_partition_workers",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("heartbeat_at", When, nullable=False),
)

parked = sa.Table(
    "bus_parked",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("subscriber", sa.String(100), nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("partition_key", sa.String(500), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", When, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("exception_id", sa.BigInteger),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.UniqueConstraint("subscriber", "seq", name="uq_bus_parked_subscriber_seq"),
    sa.Index("ix_bus_parked_key", "subscriber", "shard", "partition_key", "seq"),
)

inbox = sa.Table(
    "bus_inbox",
    metadata,
    sa.Column("subscriber", sa.String(100), primary_key=True),
    sa.Column("dedup_hash", sa.String(40), primary_key=True),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("handled_at", When, nullable=False),
)

entity_versions = sa.Table(
    "bus_entity_versions",
    metadata,
    sa.Column("subscriber", sa.String(100), primary_key=True),
    sa.Column("entity_key", sa.String(500), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", When, nullable=False),
)

exceptions = sa.Table(
    "bus_exceptions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("subscriber", sa.String(100), nullable=False),
    sa.Column("event_source", sa.String(500), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(500)),
    sa.Column("correlation_id", sa.String(200)),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("system", sa.String(100)),
    sa.Column("classification", sa.String(20), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("error_type", sa.String(300), nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("manual_retry_count", sa.Integer, nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.UniqueConstraint(
        "subscriber", "event_source", "event_id", name="uq_bus_exceptions_subscriber_event"
    ),
    sa.Index("ix_bus_exceptions_status_created_at", "status", "created_at"),
    # Created by the read model's migration views_0002: the order 360 looks entries up by key.
    sa.Index("ix_bus_exceptions_partition_key", "partition_key", "status"),
)

exception_actions = sa.Table(
    "bus_exception_actions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "entry_id",
        sa.BigInteger,
        sa.ForeignKey("bus_exceptions.id", name="fk_bus_exception_actions_entry_id"),
        nullable=False,
    ),
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", When, nullable=False),
    sa.Index("ix_bus_exception_actions_entry_id", "entry_id"),
)
