"""Tables of the order 360 read model; created by the migration ``views_0001``, keep both in step.

``views_orders`` holds one row per order: the canonical order as its events described it, its
status and version, and the ERP-owned part as last confirmed by the ERP (``erp_snapshot``,
``erp_checked_at``) or the last failed attempt to confirm it (``erp_failed_at``).
``views_order_parts`` holds everything that hangs off an order — shipments, returns, refunds,
cases and financial postings — one row per entity, with the links by which it reaches the
order (directly, or through a return or a case) and the entity version last applied.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

When = sa.DateTime(timezone=True)

views_orders = sa.Table(
    "views_orders",
    metadata,
    sa.Column("order_id", sa.String(100), primary_key=True),
    sa.Column("version", sa.BigInteger),
    sa.Column("status", sa.String(40)),
    sa.Column("document", sa.Text),
    sa.Column("status_reason", sa.String(200)),
    sa.Column("status_changed_at", When),
    sa.Column("updated_at", When, nullable=False),
    sa.Column("erp_snapshot", sa.Text),
    sa.Column("erp_checked_at", When),
    sa.Column("erp_failed_at", When),
    sa.Column("erp_failure", sa.Text),
)

views_order_parts = sa.Table(
    "views_order_parts",
    metadata,
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("entity_id", sa.String(100), primary_key=True),
    sa.Column("order_id", sa.String(100)),
    sa.Column("rma_id", sa.String(100)),
    sa.Column("case_id", sa.String(100)),
    sa.Column("version", sa.BigInteger),
    sa.Column("status", sa.String(40)),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("updated_at", When, nullable=False),
    sa.Index("ix_views_order_parts_order_id", "order_id"),
    sa.Index("ix_views_order_parts_rma_id", "rma_id"),
    sa.Index("ix_views_order_parts_case_id", "case_id"),
)
