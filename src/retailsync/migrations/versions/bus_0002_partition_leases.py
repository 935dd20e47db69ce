"""Event bus on JetStream: partition leases and the workers that share them.

A JetStream partition consumer hands many events out at once; only the worker holding the
partition's lease pulls from it, and every delivery transaction checks that lease before it
commits (fencing). Keyed by namespace, so namespaces sharing one database stay apart.

Revision ID: bus_0002
Revises: bus_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "bus_0002"
down_revision = "bus_0001"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bus_partition_leases",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("subscriber", sa.String(100), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("lease_expires_at", When),
    )
    op.create_table(
        "bus_partition_workers",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("heartbeat_at", When, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bus_partition_workers")
    op.drop_table("bus_partition_leases")
