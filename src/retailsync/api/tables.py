"""Tables of the API's governance: API clients and the responses kept for idempotency keys.

Created by migration ``governance_0001``.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailsync.db import metadata

api_clients = sa.Table(
    "api_clients",
    metadata,
    # The public part of the key (``rsk_<id>_<secret>``): lookups go by id, never by secret.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scopes", sa.String(500), nullable=False),  # space-separated, sorted
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("hash_scheme", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

idempotency_keys = sa.Table(
    "api_idempotency_keys",
    metadata,
    sa.Column("client_id", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    # sha256 over method, path, query and body: the same key must mean the same request.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # in_progress | completed
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_headers", sa.JSON, nullable=True),
    sa.Column("response_body", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_api_idempotency_keys_created_at", "created_at"),
)
