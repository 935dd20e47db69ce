"""The order 360 finds an order's open exceptions by partition key and status: index them so.

Without it, every order 360 walked all open exceptions (the status index), so an agent's
answer slowed down with the size of the exception queue. With the status in the index,
SQLite's planner (which has no statistics unless ANALYZE ran) prefers it for the 360's
``partition_key IN (...) AND status IN (...)``.

Revision ID: views_0002
Revises: views_0001, bus_0001 (it indexes the bus's exception queue)
"""

from __future__ import annotations

from alembic import op

revision = "views_0002"
down_revision = ("views_0001", "bus_0001")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bus_exceptions_partition_key", "bus_exceptions", ["partition_key", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_bus_exceptions_partition_key", table_name="bus_exceptions")
