"""The ``batch_files`` ledger: one row per file content ever processed (by SHA-256)."""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

batch_files_table = sa.Table(
    "batch_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_ok", sa.Integer, nullable=False),
    sa.Column("rows_failed", sa.Integer, nullable=False),
    sa.Column("result_file", sa.String(500), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("content_sha256", name="uq_batch_files_content_sha256"),
)
