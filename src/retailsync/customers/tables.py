"""Tables of the customer master (created by the migration ``reconcile_0001``)."""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

When = sa.DateTime(timezone=True)

golden = sa.Table(
    "customer_golden",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("updated_at", When, nullable=False),
)

source_records = sa.Table(
    "customer_sources",
    metadata,
    sa.Column("system", sa.String(60), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("golden_id", sa.String(40), sa.ForeignKey("customer_golden.id"), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.Index("ix_customer_sources_golden_id", "golden_id"),
)

match_keys = sa.Table(
    "customer_match_keys",
    metadata,
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("value", sa.String(300), primary_key=True),
    sa.Column("golden_id", sa.String(40), primary_key=True),
)

merge_proposals = sa.Table(
    "customer_merge_proposals",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("golden_a", sa.String(40), nullable=False),
    sa.Column("golden_b", sa.String(40), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("decided_at", When),
    sa.Column("decided_by", sa.String(200)),
    sa.Index("ix_customer_merge_proposals_status", "status"),
)

consent_updates = sa.Table(
    "customer_consent_updates",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("golden_id", sa.String(40), nullable=False),
    sa.Column("system", sa.String(60), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("changed_at", When, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("sent_at", When),
    sa.Index("ix_customer_consent_updates_status", "status"),
)
