"""Event bus: event store, subscriptions, cursors/leases, parked deliveries, inbox, exceptions.

Revision ID: bus_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "bus_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bus_events",
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
    )
    op.create_index("ix_bus_events_shard_seq", "bus_events", ["shard", "seq"])
    op.create_index("ix_bus_events_partition_key", "bus_events", ["partition_key"])
    op.create_index("ix_bus_events_correlation_id", "bus_events", ["correlation_id"])

    op.create_table(
        "bus_subscriptions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("filter", sa.Text, nullable=False),
        sa.Column("downstream", sa.String(100)),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "bus_cursors",
        sa.Column("subscriber", sa.String(100), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("lease_expires_at", When),
    )
    op.create_table(
        "bus_workers",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.Column("heartbeat_at", When, nullable=False),
    )
    op.create_table(
        "bus_parked",
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
    )
    op.create_index(
        "ix_bus_parked_key", "bus_parked", ["subscriber", "shard", "partition_key", "seq"]
    )
    op.create_table(
        "bus_inbox",
        sa.Column("subscriber", sa.String(100), primary_key=True),
        sa.Column("dedup_hash", sa.String(40), primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("handled_at", When, nullable=False),
    )
    op.create_table(
        "bus_entity_versions",
        sa.Column("subscriber", sa.String(100), primary_key=True),
        sa.Column("entity_key", sa.String(500), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "bus_exceptions",
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
    )
    op.create_index(
        "ix_bus_exceptions_status_created_at", "bus_exceptions", ["status", "created_at"]
    )
    op.create_table(
        "bus_exception_actions",
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
    )
    op.create_index("ix_bus_exception_actions_entry_id", "bus_exception_actions", ["entry_id"])


def downgrade() -> None:
    op.drop_table("bus_exception_actions")
    op.drop_table("bus_exceptions")
    op.drop_table("bus_entity_versions")
    op.drop_table("bus_inbox")
    op.drop_table("bus_parked")
    op.drop_table("bus_workers")
    op.drop_table("bus_cursors")
    op.drop_table("bus_subscriptions")
    op.drop_table("bus_events")
