"""The one class that speaks Tryton's JSON-RPC: login, session renewal, wire types, errors.

Every call the ERP connector makes goes through :meth:`TrytonClient.call`, so retry, circuit
breaking and throttling can wrap a single method. The helpers below it (``create``, ``read``,
``search_read``, ``button`` …) only shape parameters for the common model methods.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from retailsync.connectors.erp.errors import (
    ErpAuthenticationError,
    ErpBusinessError,
    ErpError,
    ErpProtocolError,
    ErpTransientError,
)
from retailsync.observability.otel import traceparent_hooks
from retailsync.resilience.guard import Downstream
from retailsync.resilience.http import ClosingClient
from retailsync.resilience.lanes import current_lane

Domain = list[Any]
Record = dict[str, Any]


@dataclass(frozen=True)
class TrytonConnection:
    """Where the ERP is and whom to log in as."""

    base_url: str  # e.g. http://127.0.0.1:8000
    database: str
    login: str
    password: str = field(repr=False)
    language: str = "en"
    timeout_seconds: float = 30.0

    @property
    def rpc_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.database}/rpc/"


# --- wire types ---------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """Python -> Tryton JSON (Decimal, date, datetime, bytes as ``__class__`` objects)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode_value(v) for v in value]
    return value


def decode_object(obj: dict[str, Any]) -> Any:
    """Tryton JSON object -> Python; datetimes come back naive, in UTC, as Tryton keeps them."""
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj["hour"],
            obj["minute"],
            obj["second"],
            obj["microsecond"],
        )
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "time":
        return dt.time(obj["hour"], obj["minute"], obj["second"], obj["microsecond"])
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def decode_json(text: str | bytes) -> Any:
    return json.loads(text, object_hook=decode_object)


def error_from_payload(error: Any, operation: str) -> ErpError:
    """Turn the ``error`` member of a JSON-RPC answer into the matching exception."""
    if isinstance(error, list | tuple) and len(error) == 2 and isinstance(error[0], str):
        kind, args = error
        if kind == "UserError" and isinstance(args, list | tuple) and args:
            description = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            return ErpBusinessError(str(args[0]), description=description, operation=operation)
        if kind == "UserWarning" and isinstance(args, list | tuple) and len(args) >= 2:
            description = args[2] if len(args) > 2 and isinstance(args[2], str) else ""
            return ErpBusinessError(
                f"{args[1]} (a warning the ERP wants confirmed: {args[0]})",
                description=description,
                operation=operation,
            )
        if kind == "ConcurrencyException":
            return ErpTransientError(f"concurrent update in the ERP: {args}", operation=operation)
        if kind == "RateLimitException":
            return ErpTransientError("the ERP is rate limiting this user", operation=operation)
        if kind == "LoginException":
            return ErpAuthenticationError(
                f"{operation}: the ERP asks for more login information ({args}); "
                "the connector only supports password logins"
            )
        # Any other exception arrives as [str(exc), traceback]: a server-side failure that
        # retrying will not fix (bad field, missing database, programming error).
        first_line = kind.strip().splitlines()[0] if kind.strip() else "unknown error"
        return ErpBusinessError(first_line, operation=operation)
    return ErpProtocolError(f"{operation}: unrecognised error payload from the ERP: {error!r}")


# --- the client ---------------------------------------------------------------------------


_READ_METHODS = frozenset(
    {
        "read",
        "search",
        "search_read",
        "search_count",
        "fields_get",
        "default_get",
        "get_preferences",
        "login",
        "version",
        "list",
    }
)


def is_mutating(method: str) -> bool:
    """Whether a JSON-RPC method may change ERP state (anything not a known read)."""
    name = method.rsplit(".", 1)[-1]
    return not (name in _READ_METHODS or name.startswith("on_change"))


class TrytonClient(ClosingClient):
    """Async JSON-RPC client for one Tryton database, with transparent session renewal."""

    def __init__(
        self,
        connection: TrytonConnection,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        guard: Downstream | None = None,
    ) -> None:
        self.connection = connection
        self.guard = guard
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(connection.timeout_seconds, connect=5.0),
            transport=transport,
            event_hooks=traceparent_hooks(),
            headers={"Content-Type": "application/json"},
        )
        self._ids = itertools.count(1)
        self._session: str | None = None
        self._context: dict[str, Any] | None = None
        self.logins = 0  # how many times a session was opened (visible for monitoring/tests)

    async def aclose(self) -> None:
        await self._http.aclose()

    # The single JSON-RPC call site ------------------------------------------------------

    async def call(self, method: str, params: Sequence[Any], *, context: bool = True) -> Any:
        """Call ``method`` with ``params`` (the user context appended when ``context``).

        Logs in on first use and once more when the session has expired (HTTP 401). With a
        resilience ``guard`` every call passes through it (rate limit, breaker, lanes); reads
        are retried on transient failures, writes are not (the adapter makes them idempotent
        by looking up what a previous attempt created).
        """
        if self.guard is None:
            return await self._call(method, params, context=context)
        return await self.guard.call(
            method,
            lambda: self._call(method, params, context=context),
            lane=current_lane.get(),
            mutating=is_mutating(method),
        )

    async def _call(self, method: str, params: Sequence[Any], *, context: bool) -> Any:
        if self._session is None:
            await self._login()
        for attempt in (1, 2):
            full = [*params, await self.context()] if context else list(params)
            response = await self._post(method, full, authorised=True)
            if response.status_code == 401 and attempt == 1:
                self._session = None
                await self._login()
                continue
            return self._result(method, response)
        raise ErpAuthenticationError(f"{method}: the ERP rejected a freshly opened session")

    async def context(self) -> dict[str, Any]:
        """The user's preferences (company, language …), fetched once per session."""
        if self._context is None:
            preferences = await self.call(
                "model.res.user.get_preferences", [True, {}], context=False
            )
            self._context = dict(preferences)
        return self._context

    def forget_session(self) -> None:
        """Drop the session token (the next call logs in again)."""
        self._session = None

    async def _login(self) -> None:
        conn = self.connection
        response = await self._post(
            "common.db.login",
            [conn.login, {"password": conn.password}, conn.language],
            authorised=False,
        )
        if response.status_code in (401, 403):
            raise ErpAuthenticationError(
                f"the ERP refused the login of user {conn.login!r} on database "
                f"{conn.database!r}; check the ERP login and password settings"
            )
        result = self._result("common.db.login", response)
        if not isinstance(result, list | tuple) or len(result) < 2:
            raise ErpAuthenticationError(
                f"the ERP refused the login of user {conn.login!r} on database "
                f"{conn.database!r} (answer {result!r}); check the ERP login and password"
            )
        user_id, token = result[0], result[1]
        raw = f"{conn.login}:{user_id}:{token}".encode()
        self._session = base64.b64encode(raw).decode("ascii")
        self.logins += 1

    async def _post(self, method: str, params: list[Any], *, authorised: bool) -> httpx.Response:
        headers = {}
        if authorised and self._session is not None:
            headers["Authorization"] = f"Session {self._session}"
        body = json.dumps({"id": next(self._ids), "method": method, "params": encode_value(params)})
        try:
            response = await self._http.post(self.connection.rpc_url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ErpTransientError(
                f"the ERP did not answer within the timeout ({type(exc).__name__})",
                operation=method,
            ) from exc
        except httpx.TransportError as exc:
            raise ErpTransientError(
                f"the ERP at {self.connection.base_url} could not be reached "
                f"({type(exc).__name__}: {exc})",
                operation=method,
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ErpTransientError(
                f"the ERP answered HTTP {response.status_code}: {response.text[:200]}",
                operation=method,
                status_code=response.status_code,
            )
        return response

    @staticmethod
    def _result(method: str, response: httpx.Response) -> Any:
        if response.status_code == 401:
            raise ErpAuthenticationError(f"{method}: the ERP session is not valid (HTTP 401)")
        if response.status_code != 200:
            raise ErpProtocolError(
                f"{method}: the ERP answered HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            payload = decode_json(response.content)
        except ValueError as exc:
            raise ErpProtocolError(f"{method}: the ERP answered with invalid JSON") from exc
        if not isinstance(payload, dict):
            raise ErpProtocolError(f"{method}: unexpected JSON-RPC answer {payload!r:.200}")
        if payload.get("error") is not None:
            raise error_from_payload(payload["error"], method)
        return payload.get("result")

    # Shapes of the common model methods -------------------------------------------------

    async def create(self, model: str, values: Sequence[Mapping[str, Any]]) -> list[int]:
        return list(await self.call(f"model.{model}.create", [list(values)]))

    async def write(self, model: str, ids: Sequence[int], values: Mapping[str, Any]) -> None:
        await self.call(f"model.{model}.write", [list(ids), dict(values)])

    async def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[Record]:
        if not ids:
            return []
        return list(await self.call(f"model.{model}.read", [list(ids), list(fields)]))

    async def search(
        self,
        model: str,
        domain: Domain,
        *,
        offset: int = 0,
        limit: int | None = None,
        order: Sequence[tuple[str, str]] | None = None,
    ) -> list[int]:
        params = [domain, offset, limit, [list(o) for o in order] if order else None]
        return list(await self.call(f"model.{model}.search", params))

    async def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: Sequence[tuple[str, str]] | None = None,
    ) -> list[Record]:
        params = [domain, offset, limit, [list(o) for o in order] if order else None, list(fields)]
        return list(await self.call(f"model.{model}.search_read", params))

    async def button(self, model: str, name: str, ids: Sequence[int]) -> Any:
        """Press a workflow button (``quote``, ``confirm``, ``process``, ``post`` …)."""
        return await self.call(f"model.{model}.{name}", [list(ids)])

    async def with_context(self, model: str, method: str, params: Sequence[Any], **ctx: Any) -> Any:
        """Call ``model.method`` with extra context keys (e.g. ``locations`` for stock)."""
        full = [*params, {**(await self.context()), **ctx}]
        return await self.call(f"model.{model}.{method}", full, context=False)

    async def server_version(self) -> str:
        return str(await self.call("common.server.version", [], context=False))
