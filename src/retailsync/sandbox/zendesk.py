"""A local stand-in for the subset of the Zendesk Support API the hub uses.

Same paths, payload shapes, status codes and error bodies as Zendesk for: show / update / list
tickets (cursor pagination with ``page[size]``, ``page[after]``, ``meta.has_more``,
``links.next``; sideloaded ``include=users``), list ticket comments, API-token basic auth, the
per-minute rate limit (HTTP 429 with ``Retry-After`` and ``X-Rate-Limit`` headers after a
configurable burst) and webhooks signed as ``base64(HMAC-SHA256(timestamp + body))`` in the
event-subscription payload format (``zen:event-type:ticket.*``).

A control API under ``/_sandbox`` seeds tickets, changes a ticket as an agent would (which emits
webhooks), injects faults (the next N calls fail with 500, or are answered 429) and shows the
request log and webhook deliveries. State lives in memory, per :class:`ZendeskSandbox`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
EVENT_VERSION = "2022-11-06"


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's documented scheme: ``base64(HMAC-SHA256(secret, TIMESTAMP + BODY))``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Faults:
    """Faults to inject into the next API calls (control API: ``POST /_sandbox/faults``)."""

    fail_next: int = 0
    fail_status: int = 500
    throttle_next: int = 0
    retry_after_seconds: int = 1


@dataclass
class RateLimit:
    """Zendesk's per-minute budget, shrunk for tests: ``burst`` calls per ``window_seconds``."""

    burst: int | None = None
    window_seconds: float = 60.0
    retry_after_seconds: int = 1
    calls: deque[float] = field(default_factory=deque)


@dataclass
class WebhookTarget:
    url: str
    secret: str
    webhook_id: str = "01GSANDBOXWEBHOOK0000000000"


@dataclass
class Delivery:
    """One webhook request the sandbox sent, and what the receiver answered."""

    event_type: str
    ticket_id: int
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None


class ZendeskSandbox:
    """In-memory Zendesk account: tickets, comments, users, faults and webhook emission."""

    def __init__(
        self,
        *,
        email: str = "agent@example.com",
        api_token: str = "sandbox-token",
        account_id: int = 1_000_001,
        webhook: WebhookTarget | None = None,
        emit_on_api_updates: bool = True,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.email = email
        self.api_token = api_token
        self.account_id = account_id
        self.webhook = webhook
        self.emit_on_api_updates = emit_on_api_updates
        self.webhook_transport = webhook_transport
        self.reset()
        self.app = create_app(self)

    def reset(self) -> None:
        """Forget every ticket, comment, user, fault, request and delivery."""
        self.tickets: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.faults = Faults()
        self.rate_limit = RateLimit()
        self.requests: list[tuple[str, str, int]] = []
        self.deliveries: list[Delivery] = []
        self._next_ticket_id = 1001
        self._next_comment_id = 9_000_001
        self._next_user_id = 5_000_001

    # -- state changes (used by the API and the control API) --------------------------------

    def add_user(self, name: str, email: str) -> dict[str, Any]:
        for user in self.users.values():
            if user["email"] == email:
                return user
        user = {"id": self._next_user_id, "name": name, "email": email, "role": "end-user"}
        self.users[user["id"]] = user
        self._next_user_id += 1
        return user

    def seed_ticket(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a ticket as if a customer had written in; returns the Zendesk ticket JSON."""
        requester = fields.get("requester") or {"name": "Sam Shopper", "email": "sam@example.com"}
        user = self.add_user(requester.get("name", "Customer"), requester["email"])
        ticket_id = int(fields.get("id") or self._next_ticket_id)
        self._next_ticket_id = max(self._next_ticket_id, ticket_id) + 1
        now = _now_iso()
        ticket = {
            "id": ticket_id,
            "url": f"/api/v2/tickets/{ticket_id}.json",
            "external_id": fields.get("external_id"),
            "type": fields.get("type", "question"),
            "subject": fields.get("subject", "Where is my order?"),
            "raw_subject": fields.get("subject", "Where is my order?"),
            "description": fields.get("description", "Hello, I have a question."),
            "priority": fields.get("priority", "normal"),
            "status": fields.get("status", "new"),
            "requester_id": user["id"],
            "submitter_id": user["id"],
            "assignee_id": fields.get("assignee_id"),
            "organization_id": None,
            "group_id": None,
            "tags": list(fields.get("tags", [])),
            "custom_fields": [
                {"id": int(item["id"]), "value": item.get("value")}
                for item in fields.get("custom_fields", [])
            ],
            "via": {"channel": fields.get("channel", "email")},
            "created_at": fields.get("created_at", now),
            "updated_at": fields.get("updated_at", now),
        }
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        self._add_comment(ticket_id, ticket["description"], public=True, author_id=user["id"])
        return ticket

    def _add_comment(self, ticket_id: int, body: str, *, public: bool, author_id: int) -> None:
        self.comments[ticket_id].append(
            {
                "id": self._next_comment_id,
                "type": "Comment",
                "author_id": author_id,
                "body": body,
                "html_body": f"<div><p>{body}</p></div>",
                "plain_body": body,
                "public": public,
                "created_at": _now_iso(),
            }
        )
        self._next_comment_id += 1

    def apply_update(
        self, ticket_id: int, changes: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """Apply a ticket update; returns the ticket and the webhook event types it causes.

        Raises ``ValueError`` with Zendesk's ``details`` shape for invalid values.
        """
        ticket = self.tickets[ticket_id]
        details: dict[str, list[dict[str, str]]] = {}
        if "status" in changes and changes["status"] not in STATUSES:
            details["status"] = [{"description": f"Status: {changes['status']} is not valid"}]
        if "priority" in changes and changes["priority"] not in (*PRIORITIES, None):
            details["priority"] = [{"description": "Priority: is not valid"}]
        if ticket["status"] == "closed":
            details["status"] = [{"description": "Status: closed prevents ticket update"}]
        if details:
            raise ValueError(details)
        events: list[str] = []
        for key in ("status", "priority", "subject", "type", "assignee_id", "external_id"):
            if key in changes and changes[key] != ticket[key]:
                ticket[key] = changes[key]
                events.append(
                    {
                        "status": "status_changed",
                        "priority": "priority_changed",
                        "subject": "subject_changed",
                        "type": "type_changed",
                        "assignee_id": "agent_assignment_changed",
                        "external_id": "external_id_changed",
                    }[key]
                )
        tags = list(ticket["tags"])
        if "tags" in changes:
            tags = [str(tag) for tag in changes["tags"]]
        for tag in changes.get("additional_tags", []):
            if tag not in tags:
                tags.append(str(tag))
        tags = [tag for tag in tags if tag not in set(changes.get("remove_tags", []))]
        if tags != ticket["tags"]:
            ticket["tags"] = tags
            events.append("tags_changed")
        for item in changes.get("custom_fields", []):
            field_id = int(item["id"])
            existing = next((f for f in ticket["custom_fields"] if f["id"] == field_id), None)
            if existing is None:
                existing = {"id": field_id, "value": None}
                ticket["custom_fields"].append(existing)
            if existing["value"] != item.get("value"):
                existing["value"] = item.get("value")
                events.append(f"custom_field_changed:{field_id}")
        comment = changes.get("comment")
        if comment:
            self._add_comment(
                ticket_id,
                comment.get("body") or comment.get("html_body", ""),
                public=bool(comment.get("public", True)),
                author_id=int(comment.get("author_id", 1)),
            )
            events.append("comment_added")
        if events:
            ticket["updated_at"] = _now_iso()
        return ticket, events

    # -- webhooks ---------------------------------------------------------------------------

    def event_payload(
        self, ticket: dict[str, Any], event_type: str, before: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A webhook body in Zendesk's event-subscription format for ``event_type``."""
        event: dict[str, Any] = {}
        name = "created" if event_type == "ticket_created" else event_type
        if event_type.startswith("custom_field_changed:"):
            name = "custom_field_changed"
            field_id = int(event_type.split(":", 1)[1])
            current = next(f["value"] for f in ticket["custom_fields"] if f["id"] == field_id)
            previous = None
            if before is not None:
                previous = next(
                    (f["value"] for f in before["custom_fields"] if f["id"] == field_id), None
                )
            event = {
                "current": current,
                "previous": previous,
                "custom_field": {"id": str(field_id), "title": "Order number", "type": "text"},
            }
        elif event_type in ("status_changed", "priority_changed") and before is not None:
            key = event_type.removesuffix("_changed")
            event = {"current": _upper(ticket[key]), "previous": _upper(before[key])}
        elif event_type == "tags_changed" and before is not None:
            event = {
                "tags_added": [t for t in ticket["tags"] if t not in before["tags"]],
                "tags_removed": [t for t in before["tags"] if t not in ticket["tags"]],
            }
        detail = {
            "actor_id": "-1",
            "assignee_id": _str_or_none(ticket["assignee_id"]),
            "brand_id": "360000000001",
            "created_at": ticket["created_at"],
            "custom_status": "1",
            "description": ticket["description"],
            "external_id": ticket["external_id"],
            "form_id": "360000000002",
            "group_id": _str_or_none(ticket["group_id"]),
            "id": str(ticket["id"]),
            "is_public": True,
            "organization_id": _str_or_none(ticket["organization_id"]),
            "priority": _upper(ticket["priority"]),
            "requester_id": str(ticket["requester_id"]),
            "status": _upper(ticket["status"]),
            "subject": ticket["subject"],
            "submitter_id": str(ticket["submitter_id"]),
            "tags": list(ticket["tags"]),
            "type": _upper(ticket["type"]),
            "updated_at": ticket["updated_at"],
            "via": {"channel": ticket["via"]["channel"]},
        }
        return {
            "account_id": self.account_id,
            "detail": detail,
            "event": event,
            "id": str(uuid.uuid4()),
            "subject": f"zen:ticket:{ticket['id']}",
            "time": _now_iso(),
            "type": f"zen:event-type:ticket.{name}",
            "zendesk_event_version": EVENT_VERSION,
        }

    async def emit(
        self, ticket_id: int, event_types: list[str], before: dict[str, Any] | None
    ) -> list[Delivery]:
        """Send one signed webhook per event type to the configured target, in order."""
        if self.webhook is None:
            return []
        sent = []
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10) as http:
            for event_type in event_types:
                payload = self.event_payload(self.tickets[ticket_id], event_type, before)
                body = json.dumps(payload, separators=(",", ":")).encode()
                timestamp = _now_iso()
                headers = {
                    "Content-Type": "application/json",
                    "X-Zendesk-Webhook-Signature": sign_webhook(
                        self.webhook.secret, timestamp, body
                    ),
                    "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
                    "X-Zendesk-Webhook-Id": self.webhook.webhook_id,
                    "X-Zendesk-Webhook-Invocation-Id": payload["id"],
                    "User-Agent": "Zendesk Webhook",
                }
                delivery = Delivery(payload["type"], ticket_id, body, headers)
                try:
                    response = await http.post(self.webhook.url, content=body, headers=headers)
                    delivery.status = response.status_code
                except httpx.HTTPError as exc:
                    delivery.error = f"{type(exc).__name__}: {exc}"
                self.deliveries.append(delivery)
                sent.append(delivery)
        return sent

    # -- gatekeeping for the public API ---------------------------------------------------------

    def authenticated(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        return decoded == f"{self.email}/token:{self.api_token}"

    def admit(self) -> Response | None:
        """The fault or rate-limit answer for this call, or ``None`` to serve it."""
        if self.faults.throttle_next > 0:
            self.faults.throttle_next -= 1
            return _too_many(self.faults.retry_after_seconds, 0)
        if self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            return JSONResponse(
                {"error": "InternalServerError", "description": "Something went wrong"},
                status_code=self.faults.fail_status,
            )
        limit = self.rate_limit
        if limit.burst is not None:
            now = time.monotonic()
            while limit.calls and now - limit.calls[0] >= limit.window_seconds:
                limit.calls.popleft()
            if len(limit.calls) >= limit.burst:
                wait = limit.window_seconds - (now - limit.calls[0])
                return _too_many(max(limit.retry_after_seconds, int(wait + 0.999)), limit.burst)
            limit.calls.append(now)
        return None

    def rate_headers(self) -> dict[str, str]:
        limit = self.rate_limit
        total = limit.burst if limit.burst is not None else 700
        remaining = total - len(limit.calls) if limit.burst is not None else total - 1
        return {"X-Rate-Limit": str(total), "X-Rate-Limit-Remaining": str(max(remaining, 0))}


def _upper(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _too_many(retry_after: int, limit: int) -> Response:
    return PlainTextResponse(
        "Number of allowed API requests per minute exceeded",
        status_code=429,
        headers={
            "Retry-After": str(retry_after),
            "X-Rate-Limit": str(limit or 700),
            "X-Rate-Limit-Remaining": "0",
        },
    )


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, status_code=404)


def _cursor_page(
    request: Request, items: list[dict[str, Any]], key: str, path: str
) -> dict[str, Any]:
    """Zendesk cursor pagination over ``items`` (ordered by id); cursors are opaque strings."""
    params = request.query_params
    size = min(int(params.get("page[size]", "100")), 100)
    after = params.get("page[after]")
    start = 0
    if after:
        last_id = int(base64.urlsafe_b64decode(after.encode()).decode())
        start = next((i for i, item in enumerate(items) if item["id"] > last_id), len(items))
    page = items[start : start + size]
    has_more = start + size < len(items)

    def cursor(item: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(str(item["id"]).encode()).decode()

    base = str(request.base_url).rstrip("/") + path
    after_cursor = cursor(page[-1]) if page else None
    before_cursor = cursor(page[0]) if page else None
    return {
        key: page,
        "meta": {
            "has_more": has_more,
            "after_cursor": after_cursor,
            "before_cursor": before_cursor,
        },
        "links": {
            "next": f"{base}?page%5Bsize%5D={size}&page%5Bafter%5D={after_cursor}"
            if has_more
            else None,
            "prev": f"{base}?page%5Bsize%5D={size}&page%5Bbefore%5D={before_cursor}"
            if start > 0
            else None,
        },
    }


def create_app(sandbox: ZendeskSandbox) -> FastAPI:
    """The sandbox's HTTP app: the Zendesk subset under ``/api/v2``, control under ``/_sandbox``."""
    app = FastAPI(title="Zendesk sandbox", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/api/v2/"):
            if not sandbox.authenticated(request):
                response: Response = JSONResponse(
                    {"error": "Couldn't authenticate you"}, status_code=401
                )
            else:
                response = sandbox.admit() or await call_next(request)
                if response.status_code != 429:
                    for name, value in sandbox.rate_headers().items():
                        response.headers[name] = value
            sandbox.requests.append((request.method, path, response.status_code))
            return response
        response = await call_next(request)
        return response

    @app.get("/api/v2/tickets.json")
    async def list_tickets(request: Request) -> Response:
        tickets = sorted(sandbox.tickets.values(), key=lambda t: t["id"])
        if "page[size]" in request.query_params:
            return JSONResponse(_cursor_page(request, tickets, "tickets", "/api/v2/tickets.json"))
        page = int(request.query_params.get("page", "1"))
        per_page = min(int(request.query_params.get("per_page", "100")), 100)
        chunk = tickets[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(tickets)
        base = str(request.base_url).rstrip("/") + "/api/v2/tickets.json"
        return JSONResponse(
            {
                "tickets": chunk,
                "count": len(tickets),
                "next_page": f"{base}?page={page + 1}&per_page={per_page}" if more else None,
                "previous_page": f"{base}?page={page - 1}&per_page={per_page}"
                if page > 1
                else None,
            }
        )

    @app.get("/api/v2/tickets/{ticket_id}.json")
    async def show_ticket(ticket_id: int, request: Request) -> Response:
        ticket = sandbox.tickets.get(ticket_id)
        if ticket is None:
            return _not_found()
        body: dict[str, Any] = {"ticket": ticket}
        if "users" in request.query_params.get("include", "").split(","):
            ids = {ticket["requester_id"], ticket["submitter_id"], ticket["assignee_id"]}
            body["users"] = [sandbox.users[i] for i in sorted(i for i in ids if i in sandbox.users)]
        return JSONResponse(body)

    @app.put("/api/v2/tickets/{ticket_id}.json")
    async def update_ticket(ticket_id: int, request: Request) -> Response:
        if ticket_id not in sandbox.tickets:
            return _not_found()
        try:
            payload = await request.json()
            changes = payload["ticket"]
            if not isinstance(changes, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"error": "InvalidEndpoint", "description": "Missing ticket parameter"},
                status_code=400,
            )
        before = json.loads(json.dumps(sandbox.tickets[ticket_id]))
        try:
            ticket, events = sandbox.apply_update(ticket_id, changes)
        except ValueError as exc:
            return JSONResponse(
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": exc.args[0],
                },
                status_code=422,
            )
        if sandbox.emit_on_api_updates and events:
            await sandbox.emit(ticket_id, events, before)
        return JSONResponse({"ticket": ticket, "audit": {"events": events}})

    @app.get("/api/v2/tickets/{ticket_id}/comments.json")
    async def list_comments(ticket_id: int, request: Request) -> Response:
        if ticket_id not in sandbox.comments:
            return _not_found()
        return JSONResponse(
            _cursor_page(
                request,
                sandbox.comments[ticket_id],
                "comments",
                f"/api/v2/tickets/{ticket_id}/comments.json",
            )
        )

    # -- control API ------------------------------------------------------------------------

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        sandbox.reset()
        return {"ok": True}

    @app.post("/_sandbox/tickets", status_code=201)
    async def seed(request: Request) -> dict[str, Any]:
        fields = await request.json()
        emit = bool(fields.pop("emit", True))
        ticket = sandbox.seed_ticket(fields)
        if emit:
            await sandbox.emit(ticket["id"], ["ticket_created"], None)
        return {"ticket": ticket}

    @app.post("/_sandbox/tickets/{ticket_id}/agent-update")
    async def agent_update(ticket_id: int, request: Request) -> Response:
        if ticket_id not in sandbox.tickets:
            return _not_found()
        changes = await request.json()
        before = json.loads(json.dumps(sandbox.tickets[ticket_id]))
        try:
            ticket, events = sandbox.apply_update(ticket_id, changes)
        except ValueError as exc:
            return JSONResponse({"error": "RecordInvalid", "details": exc.args[0]}, 422)
        await sandbox.emit(ticket_id, events, before)
        return JSONResponse({"ticket": ticket, "events": events})

    @app.post("/_sandbox/faults")
    async def faults(request: Request) -> dict[str, Any]:
        body = await request.json()
        sandbox.faults.fail_next = int(body.get("fail_next", sandbox.faults.fail_next))
        sandbox.faults.fail_status = int(body.get("fail_status", sandbox.faults.fail_status))
        sandbox.faults.throttle_next = int(body.get("throttle_next", sandbox.faults.throttle_next))
        sandbox.faults.retry_after_seconds = int(
            body.get("retry_after_seconds", sandbox.faults.retry_after_seconds)
        )
        return {"ok": True}

    @app.post("/_sandbox/rate-limit")
    async def rate_limit(request: Request) -> dict[str, Any]:
        body = await request.json()
        burst = body.get("burst")
        sandbox.rate_limit = RateLimit(
            burst=None if burst is None else int(burst),
            window_seconds=float(body.get("window_seconds", 60)),
            retry_after_seconds=int(body.get("retry_after_seconds", 1)),
        )
        return {"ok": True}

    @app.post("/_sandbox/webhook")
    async def configure_webhook(request: Request) -> dict[str, Any]:
        body = await request.json()
        sandbox.webhook = WebhookTarget(url=body["url"], secret=body["secret"])
        return {"ok": True}

    @app.get("/_sandbox/requests")
    async def requests_log() -> dict[str, Any]:
        return {"requests": [list(item) for item in sandbox.requests]}

    @app.get("/_sandbox/deliveries")
    async def deliveries() -> dict[str, Any]:
        return {
            "deliveries": [
                {
                    "type": d.event_type,
                    "ticket_id": d.ticket_id,
                    "status": d.status,
                    "error": d.error,
                }
                for d in sandbox.deliveries
            ]
        }

    return app


async def _serve(host: str, port: int) -> None:  # pragma: no cover - manual use
    import uvicorn

    sandbox = ZendeskSandbox()
    await uvicorn.Server(uvicorn.Config(sandbox.app, host=host, port=port)).serve()


if __name__ == "__main__":  # pragma: no cover - manual use
    asyncio.run(_serve("127.0.0.1", 8025))
