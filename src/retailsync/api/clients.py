"""API clients and their keys: issue (shown once), list, revoke, verify.

A key reads ``rsk_<id>_<secret>``. The id is public and indexes the row; the secret is 256
random bits and is stored only as HMAC-SHA256 under a pepper derived from the hub's
``secret_key`` (why not scrypt: docs/decisions/0005-api-governance.md). Every change is
written to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy.engine import Connection

from retailsync.api.errors import InvalidCredentials, UnknownApiClient
from retailsync.api.scopes import Scope
from retailsync.api.tables import api_clients
from retailsync.audit import record_audit

KEY_PREFIX = "rsk"
HASH_SCHEME = "hmac-sha256-v1"
_PEPPER_CONTEXT = b"retailsync/api-key-pepper/v1"


class ApiClient(BaseModel):
    """A client as anyone may see it: never the secret, never its hash."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedApiKey:
    """A new client and its key; the key is not stored and cannot be shown again."""

    client: ApiClient
    key: str


def api_key_pepper(secret_key: SecretStr | str) -> bytes:
    """The pepper for key hashes, derived from the hub's ``secret_key`` (rotating that key
    invalidates every API key)."""
    raw = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
    return hmac.new(raw.encode(), _PEPPER_CONTEXT, hashlib.sha256).digest()


def _secret_hash(pepper: bytes, client_id: str, secret: str) -> str:
    return hmac.new(pepper, f"{client_id}:{secret}".encode(), hashlib.sha256).hexdigest()


_CLIENT_ID = re.compile(r"[A-Za-z0-9-]{4,64}")
MIN_SECRET_LENGTH = 24


def parse_api_key(key: str) -> tuple[str, str]:
    """``(id, secret)`` of a key that has the ``rsk_<id>_<secret>`` shape."""
    prefix, _, rest = key.partition("_")
    client_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not client_id or not secret:
        raise InvalidCredentials("the API key is malformed: expected rsk_<id>_<secret>")
    return client_id, secret


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(f"{KEY_PREFIX}_")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # SQLite keeps no offset; written in UTC


def _client(row: Any) -> ApiClient:
    return ApiClient(
        id=row.id,
        name=row.name,
        scopes=[Scope(scope) for scope in row.scopes.split()],
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        revoked_at=_utc(row.revoked_at),
    )


def _audit_state(client: ApiClient) -> dict[str, Any]:
    return client.model_dump(mode="json")


def create_api_client(
    connection: Connection,
    *,
    name: str,
    scopes: Iterable[Scope],
    pepper: bytes,
    actor: str,
    correlation_id: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    client_id: str | None = None,
    secret: str | None = None,
) -> IssuedApiKey:
    """Issue a client named ``name`` holding ``scopes``; audited as ``api_client.created``.

    ``client_id`` and ``secret`` are drawn at random unless given (a deployment that derives a
    stable key, such as the local demo); a given pair must still look like a key's parts.
    """
    name = name.strip()
    granted = sorted(set(scopes))
    if not name:
        raise ValueError("an API client needs a name that says who uses it")
    if not granted:
        raise ValueError(f"an API client needs at least one scope: {', '.join(Scope)}")
    client_id = client_id or secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(32)
    if not _CLIENT_ID.fullmatch(client_id) or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            "an API client id is 4-64 letters, digits or '-', and its secret at least "
            f"{MIN_SECRET_LENGTH} characters"
        )
    client = ApiClient(
        id=client_id, name=name, scopes=granted, created_at=clock(), created_by=actor
    )
    connection.execute(
        api_clients.insert().values(
            id=client.id,
            name=client.name,
            scopes=" ".join(granted),
            secret_hash=_secret_hash(pepper, client_id, secret),
            hash_scheme=HASH_SCHEME,
            created_at=client.created_at,
            created_by=actor,
        )
    )
    record_audit(
        connection,
        actor=actor,
        action="api_client.created",
        entity_kind="api_client",
        entity_id=client.id,
        before=None,
        after=_audit_state(client),
        correlation_id=correlation_id,
    )
    return IssuedApiKey(client=client, key=f"{KEY_PREFIX}_{client_id}_{secret}")


def list_api_clients(connection: Connection) -> list[ApiClient]:
    """Every client, oldest first, revoked ones included."""
    rows = connection.execute(sa.select(api_clients).order_by(api_clients.c.created_at))
    return [_client(row) for row in rows]


def get_api_client(connection: Connection, client_id: str) -> ApiClient:
    row = connection.execute(
        sa.select(api_clients).where(api_clients.c.id == client_id)
    ).one_or_none()
    if row is None:
        raise UnknownApiClient(client_id)
    return _client(row)


def revoke_api_client(
    connection: Connection,
    client_id: str,
    *,
    actor: str,
    correlation_id: str | None,
    reason: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ApiClient:
    """Refuse the client's key from now on; audited as ``api_client.revoked``.

    Revoking a revoked client changes nothing and records nothing.
    """
    before = get_api_client(connection, client_id)
    if not before.active:
        return before
    revoked_at = clock()
    connection.execute(
        api_clients.update()
        .where(api_clients.c.id == client_id, api_clients.c.revoked_at.is_(None))
        .values(revoked_at=revoked_at)
    )
    after = before.model_copy(update={"revoked_at": revoked_at})
    record_audit(
        connection,
        actor=actor,
        action="api_client.revoked",
        entity_kind="api_client",
        entity_id=client_id,
        before=_audit_state(before),
        after=_audit_state(after),
        correlation_id=correlation_id,
        reason=reason,
    )
    return after


# Every authenticated request runs this lookup: the statement is built once.
_CLIENT_BY_ID = sa.select(api_clients).where(api_clients.c.id == sa.bindparam("client_id"))


def verify_api_key(connection: Connection, key: str, pepper: bytes) -> ApiClient:
    """The active client that ``key`` belongs to; :class:`InvalidCredentials` otherwise."""
    client_id, secret = parse_api_key(key)
    row = connection.execute(_CLIENT_BY_ID, {"client_id": client_id}).one_or_none()
    # Compare against a hash even for an unknown id, so timing does not reveal which ids exist.
    stored = row.secret_hash if row is not None else _secret_hash(pepper, "unknown", "")
    presented = _secret_hash(pepper, client_id, secret)
    if not hmac.compare_digest(stored, presented) or row is None:
        raise InvalidCredentials("the API key is not valid")
    if row.hash_scheme != HASH_SCHEME:
        raise InvalidCredentials(f"the API key uses an unsupported hash ({row.hash_scheme})")
    if row.revoked_at is not None:
        raise InvalidCredentials("the API key has been revoked")
    return _client(row)
