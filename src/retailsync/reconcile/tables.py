"""Tables of reconciliation (runs, drift rows, exception tickets) and available-to-sell.

Created by the migration ``reconcile_0001``; keep both in step.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)

runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("scope", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("trigger", sa.String(40), nullable=False),
    sa.Column("requested_by", sa.String(200)),
    sa.Column("started_at", When, nullable=False),
    sa.Column("finished_at", When),
    sa.Column("keys_compared", sa.BigInteger, nullable=False),
    sa.Column("drift_count", sa.Integer, nullable=False),
    sa.Column("corrections", sa.Integer, nullable=False),
    sa.Column("exceptions", sa.Integer, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_reconcile_runs_job_started_at", "job", "started_at"),
)

drifts = sa.Table(
    "reconcile_drifts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(40),
        sa.ForeignKey("reconcile_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("owner", sa.String(60), nullable=False),
    sa.Column("target", sa.String(60)),
    sa.Column("expected", sa.String(200)),
    sa.Column("observed", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("correction_event_id", sa.String(200)),
    sa.Column("exception_id", sa.String(100)),
    sa.Index("ix_reconcile_drifts_run_id_seq", "run_id", "seq"),
)

tickets = sa.Table(
    "reconcile_exceptions",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("scope", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("assignee", sa.String(60), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("observed", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("first_run_id", sa.String(40), nullable=False),
    sa.Column("last_run_id", sa.String(40), nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.Index("ix_reconcile_exceptions_status", "status"),
)

ats_positions = sa.Table(
    "ats_positions",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("location", sa.String(64), primary_key=True),
    sa.Column("base_on_hand", sa.Integer, nullable=False),
    sa.Column("reserved", sa.Integer, nullable=False),
    sa.Column("in_transit", sa.Integer, nullable=False),
    sa.Column("erp_as_of", When),
    sa.Column("erp_version", sa.Integer, nullable=False),
    sa.Column("allocated", sa.Integer, nullable=False),
    sa.Column("wms_as_of", When),
    sa.Column("wms_version", sa.Integer, nullable=False),
    sa.Column("on_hand", sa.Integer, nullable=False),
    sa.Column("available", sa.Integer, nullable=False),
    sa.Column("updated_at", When, nullable=False),
)

ats_adjustments = sa.Table(
    "ats_adjustments",
    metadata,
    sa.Column("adjustment_id", sa.String(100), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("location", sa.String(64), nullable=False),
    sa.Column("delta", sa.Integer, nullable=False),
    sa.Column("occurred_at", When, nullable=False),
    sa.Index("ix_ats_adjustments_sku_location", "sku", "location"),
)

ats_channel_levels = sa.Table(
    "ats_channel_levels",
    metadata,
    sa.Column("channel", sa.String(60), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("available", sa.Integer, nullable=False),
    sa.Column("pushed", sa.Integer),
    sa.Column("pushed_at", When),
    sa.Column("updated_at", When, nullable=False),
)
