"""``Idempotency-Key`` on mutating routes: the first request runs, repeats get its response.

Per (client, key) the hub keeps a fingerprint of the request (method, path, query, body)
and, once it has run, its response:

- the same key and the same request again -> the stored response, with
  ``Idempotent-Replayed: true``;
- the same key with a different request -> 422 problem+json;
- the same key while the first request still runs -> 409 problem+json (nothing runs twice);
- a response that says the request did not run (5xx, or its input was rejected as invalid)
  is not kept, so a retry with the same key runs again.

The key is claimed by the route's guard (:mod:`retailsync.api.auth`) after authentication and
rate limiting; :class:`IdempotencyMiddleware` records the response on the way out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailsync.api.problems import ProblemError
from retailsync.api.settings import IdempotencySettings
from retailsync.api.tables import idempotency_keys

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
#: Visible ASCII only (a UUID fits): the key travels in a header and is compared exactly.
KEY_PATTERN = f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
_CLAIM_STATE = "idempotency_claim"
_NOT_STORED_HEADERS = frozenset({b"content-length"})


class Idempotency(StrEnum):
    """Whether a mutating route refuses a request that carries no ``Idempotency-Key``."""

    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True)
class Claim:
    """This request owns the key until it completes or is released."""

    client_id: str
    key: str
    created_at: datetime


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class IdempotentReplay(Exception):
    """Answer with the response stored for this key (raised by the guard, handled by the app)."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replaying the stored response")
        self.stored = stored


async def replay_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    stored = exc.stored
    response = Response(content=stored.body, status_code=stored.status)
    for name, value in stored.headers:
        response.headers.append(name, value)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\n")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


class IdempotencyStore:
    """Claims, completes and releases keys in ``api_idempotency_keys``."""

    def __init__(
        self,
        engine: Engine,
        settings: IdempotencySettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._clock = clock

    def claim(self, client_id: str, key: str, fingerprint: str) -> Claim:
        """Own ``key`` for this request, or raise: a replay, a conflict, or still in progress."""
        for _attempt in range(3):
            claim = self._insert(client_id, key, fingerprint)
            if claim is not None:
                return claim
            existing = self._existing(client_id, key)
            if existing is None:
                continue  # released or expired between our insert and our read
            if self._expired(existing):
                self._delete_if_unchanged(client_id, key, existing.created_at)
                continue
            if existing.fingerprint != fingerprint:
                raise ProblemError(
                    422,
                    "idempotency-key-reused",
                    f"{HEADER} {key!r} was already used for a different request (method, "
                    "path or body differ). Use a new key for a new request.",
                    title="Idempotency key reused with a different request",
                )
            if existing.state != "completed":
                raise ProblemError(
                    409,
                    "idempotency-request-in-progress",
                    f"A request with this {HEADER} is still in progress; retry later to get "
                    "its response.",
                    title="Request with this key is still in progress",
                    headers={"Retry-After": "1"},
                )
            raise IdempotentReplay(
                StoredResponse(
                    status=existing.response_status,
                    headers=[tuple(pair) for pair in existing.response_headers or []],
                    body=existing.response_body or b"",
                )
            )
        raise ProblemError(
            409,
            "idempotency-request-in-progress",
            f"Another request is taking over this {HEADER}; retry later.",
            title="Request with this key is still in progress",
            headers={"Retry-After": "1"},
        )

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                idempotency_keys.update()
                .where(*self._owned(claim))
                .values(
                    state="completed",
                    response_status=response.status,
                    response_headers=[list(pair) for pair in response.headers],
                    response_body=response.body,
                    completed_at=self._clock(),
                )
            )

    def release(self, claim: Claim) -> None:
        """Forget the key: the request did not run, a retry may run it."""
        with self.engine.begin() as connection:
            connection.execute(idempotency_keys.delete().where(*self._owned(claim)))

    def purge_expired(self) -> int:
        """Delete stored responses older than the retention; returns how many."""
        horizon = self._clock() - timedelta(hours=self.settings.retention_hours)
        with self.engine.begin() as connection:
            result = connection.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < horizon)
            )
        return result.rowcount

    def _owned(self, claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
        columns = idempotency_keys.c
        return (
            columns.client_id == claim.client_id,
            columns.key == claim.key,
            columns.created_at == claim.created_at,
        )

    def _insert(self, client_id: str, key: str, fingerprint: str) -> Claim | None:
        now = self._clock()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    idempotency_keys.insert().values(
                        client_id=client_id,
                        key=key,
                        fingerprint=fingerprint,
                        state="in_progress",
                        created_at=now,
                    )
                )
        except IntegrityError:
            return None
        return Claim(client_id=client_id, key=key, created_at=now)

    def _existing(self, client_id: str, key: str) -> sa.Row | None:  # type: ignore[type-arg]
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key
                )
            ).one_or_none()

    def _expired(self, row: sa.Row) -> bool:  # type: ignore[type-arg]
        created_at = row.created_at
        if created_at.tzinfo is None:  # SQLite keeps no offset; written in UTC
            created_at = created_at.replace(tzinfo=UTC)
        age: timedelta = self._clock() - created_at
        limit = (
            timedelta(hours=self.settings.retention_hours)
            if row.state == "completed"
            else timedelta(seconds=self.settings.in_progress_timeout_seconds)
        )
        return age > limit

    def _delete_if_unchanged(self, client_id: str, key: str, created_at: datetime) -> None:
        self.release(Claim(client_id=client_id, key=key, created_at=created_at))


async def claim_idempotency_key(
    request: Request, store: IdempotencyStore, client_id: str, required: Idempotency
) -> None:
    """Claim the request's ``Idempotency-Key`` for ``client_id`` (called by route guards)."""
    if request.method not in MUTATING_METHODS:
        return
    key = request.headers.get(HEADER)
    if key is None:
        if required is Idempotency.REQUIRED:
            raise ProblemError(
                400,
                "idempotency-key-missing",
                f"This route changes state and requires the {HEADER} header: send a unique "
                f"value (for example a UUID) per intended change, and the same value when "
                "retrying it.",
                title=f"{HEADER} header is required",
            )
        return
    if re.fullmatch(KEY_PATTERN, key) is None:
        raise ProblemError(
            400,
            "idempotency-key-invalid",
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(a UUID, for example).",
            title=f"{HEADER} header is not valid",
        )
    fingerprint = request_fingerprint(
        request.method, request.url.path, request.url.query, await request.body()
    )
    claim = await run_in_threadpool(store.claim, client_id, key, fingerprint)
    setattr(request.state, _CLAIM_STATE, claim)


class IdempotencyMiddleware:
    """Stores the response of a request that claimed a key, or releases the key."""

    def __init__(self, app: ASGIApp, store: IdempotencyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500
        headers: list[tuple[str, str]] = []
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in message.get("headers", [])
                    if name.lower() not in _NOT_STORED_HEADERS
                )
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # Settle the key before the client sees the end of the response, so an
                    # immediate retry finds the stored response, not "in progress".
                    await self._settle(scope, status, headers, bytes(body))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await self._release(scope)
            raise

    async def _settle(
        self, scope: Scope, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        state = scope.get("state", {})
        claim = state.pop(_CLAIM_STATE, None)
        if not isinstance(claim, Claim):
            return
        if status >= 500 or state.get("validation_failed"):
            await run_in_threadpool(self.store.release, claim)
        else:
            stored = StoredResponse(status=status, headers=headers, body=body)
            await run_in_threadpool(self.store.complete, claim, stored)

    async def _release(self, scope: Scope) -> None:
        claim = scope.get("state", {}).pop(_CLAIM_STATE, None)
        if isinstance(claim, Claim):
            await run_in_threadpool(self.store.release, claim)
