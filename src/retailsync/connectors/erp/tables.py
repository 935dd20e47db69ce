"""Tables the ERP connector owns: the change-capture cursor and the last state seen per record.

Created by the migration ``erp_0001`` (``migrations/versions/erp_0001_change_capture.py``).
ERP timestamps are stored as Tryton keeps them: naive datetimes in UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

erp_poll_cursor = sa.Table(
    "erp_poll_cursor",
    metadata,
    sa.Column("poller", sa.String(60), primary_key=True),
    sa.Column("model", sa.String(60), primary_key=True),
    sa.Column("stamp", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""Per poller and Tryton model: the newest create/write date already captured."""

erp_poll_seen = sa.Table(
    "erp_poll_seen",
    metadata,
    sa.Column("poller", sa.String(60), primary_key=True),
    sa.Column("model", sa.String(60), primary_key=True),
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("signature", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("stamp", sa.DateTime(timezone=False), nullable=False),
)
"""Per record: the state signature last turned into events, and the entity version it had."""
