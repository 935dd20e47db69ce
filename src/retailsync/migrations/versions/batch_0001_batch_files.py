"""Batch files: the ledger of processed drop-folder files, keyed by content hash.

Revision ID: batch_0001
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "batch_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("rows_total", sa.Integer, nullable=False),
        sa.Column("rows_ok", sa.Integer, nullable=False),
        sa.Column("rows_failed", sa.Integer, nullable=False),
        sa.Column("result_file", sa.String(500), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_batch_files"),
        sa.UniqueConstraint("content_sha256", name="uq_batch_files_content_sha256"),
    )


def downgrade() -> None:
    op.drop_table("batch_files")
