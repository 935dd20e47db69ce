"""Reconciliation runs, drift rows and tickets; available-to-sell; the customer master.

Revision ID: reconcile_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "reconcile_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconcile_runs",
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
    )
    op.create_index("ix_reconcile_runs_job_started_at", "reconcile_runs", ["job", "started_at"])
    op.create_table(
        "reconcile_drifts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.String(40),
            sa.ForeignKey(
                "reconcile_runs.id",
                ondelete="CASCADE",
                name="fk_reconcile_drifts_run_id_reconcile_runs",
            ),
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
    )
    op.create_index("ix_reconcile_drifts_run_id_seq", "reconcile_drifts", ["run_id", "seq"])
    op.create_table(
        "reconcile_exceptions",
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
    )
    op.create_index("ix_reconcile_exceptions_status", "reconcile_exceptions", ["status"])

    op.create_table(
        "ats_positions",
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
    op.create_table(
        "ats_adjustments",
        sa.Column("adjustment_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("delta", sa.Integer, nullable=False),
        sa.Column("occurred_at", When, nullable=False),
    )
    op.create_index("ix_ats_adjustments_sku_location", "ats_adjustments", ["sku", "location"])
    op.create_table(
        "ats_channel_levels",
        sa.Column("channel", sa.String(60), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("pushed", sa.Integer),
        sa.Column("pushed_at", When),
        sa.Column("updated_at", When, nullable=False),
    )

    op.create_table(
        "customer_golden",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "customer_sources",
        sa.Column("system", sa.String(60), primary_key=True),
        sa.Column("external_id", sa.String(200), primary_key=True),
        sa.Column(
            "golden_id",
            sa.String(40),
            sa.ForeignKey(
                "customer_golden.id", name="fk_customer_sources_golden_id_customer_golden"
            ),
            nullable=False,
        ),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_index("ix_customer_sources_golden_id", "customer_sources", ["golden_id"])
    op.create_table(
        "customer_match_keys",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(300), primary_key=True),
        sa.Column("golden_id", sa.String(40), primary_key=True),
    )
    op.create_table(
        "customer_merge_proposals",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("golden_a", sa.String(40), nullable=False),
        sa.Column("golden_b", sa.String(40), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("decided_at", When),
        sa.Column("decided_by", sa.String(200)),
    )
    op.create_index("ix_customer_merge_proposals_status", "customer_merge_proposals", ["status"])
    op.create_table(
        "customer_consent_updates",
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
    )
    op.create_index("ix_customer_consent_updates_status", "customer_consent_updates", ["status"])


def downgrade() -> None:
    for table in (
        "customer_consent_updates",
        "customer_merge_proposals",
        "customer_match_keys",
        "customer_sources",
        "customer_golden",
        "ats_channel_levels",
        "ats_adjustments",
        "ats_positions",
        "reconcile_exceptions",
        "reconcile_drifts",
        "reconcile_runs",
    ):
        op.drop_table(table)
