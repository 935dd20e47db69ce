"""A local warehouse (WMS) implementing the contract in docs/connectors/wms.md.

Serves ``/v1/inventory`` and ``/v1/allocations`` (cursor paged), ``/v1/return-expectations``
(idempotent by ``Idempotency-Key``) and ``/v1/pick-tasks/{id}/cancel``, with bearer-key auth,
``{"error": {"code", "message"}}`` error bodies, 429 + ``Retry-After`` after a configurable
burst, and signed webhooks (``X-WMS-Signature: sha256=<hex HMAC of "timestamp.body">``).

The control API under ``/_sandbox`` seeds stock, allocations and pick tasks, injects faults
(the next N calls fail with 500, or are answered 429) and makes the warehouse emit webhooks:
a return receipt with per-line inspection, an allocation change, a shipment confirmation.
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
from fastapi.responses import JSONResponse


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256(secret, ``timestamp`` + ``.`` + body)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


@dataclass
class WmsFaults:
    fail_next: int = 0
    fail_status: int = 500
    throttle_next: int = 0
    retry_after_seconds: int = 1
    burst: int | None = None
    window_seconds: float = 60.0
    calls: deque[float] = field(default_factory=deque)


class WmsSandbox:
    """In-memory warehouse: stock, allocations, pick tasks, expectations, webhooks."""

    def __init__(
        self,
        *,
        api_key: str = "sandbox-wms-key",
        webhook_url: str | None = None,
        webhook_secret: str = "sandbox-wms-secret",
    ) -> None:
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.reset()
        self.app = create_app(self)

    def reset(self) -> None:
        self.inventory: list[dict[str, Any]] = []
        self.allocations: list[dict[str, Any]] = []
        self.pick_tasks: dict[str, dict[str, Any]] = {}
        self.expectations: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self.faults = WmsFaults()
        self.requests: list[tuple[str, str, int]] = []
        self.deliveries: list[dict[str, Any]] = []

    def seed_inventory(self, sku: str, location: str, on_hand: int, allocated: int = 0) -> None:
        self.inventory.append(
            {
                "sku": sku,
                "location": location,
                "on_hand": on_hand,
                "allocated": allocated,
                "available": on_hand - allocated,
                "as_of": _now_iso(),
            }
        )

    def admit(self) -> Response | None:
        faults = self.faults
        if faults.throttle_next > 0:
            faults.throttle_next -= 1
            return _error(
                429,
                "rate_limited",
                "too many requests",
                **{"Retry-After": str(faults.retry_after_seconds)},
            )
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return _error(faults.fail_status, "internal", "the warehouse system failed")
        if faults.burst is not None:
            now = time.monotonic()
            while faults.calls and now - faults.calls[0] >= faults.window_seconds:
                faults.calls.popleft()
            if len(faults.calls) >= faults.burst:
                wait = max(
                    faults.retry_after_seconds,
                    int(faults.window_seconds - (now - faults.calls[0]) + 0.999),
                )
                return _error(
                    429, "rate_limited", "too many requests", **{"Retry-After": str(wait)}
                )
            faults.calls.append(now)
        return None

    async def emit(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send one signed webhook to ``webhook_url``; returns the delivery record."""
        if self.webhook_url is None:
            raise RuntimeError("no webhook_url configured: POST /_sandbox/webhook first")
        event_id = f"evt_{uuid.uuid4().hex}"
        body = json.dumps(
            {"id": event_id, "type": event_type, "occurred_at": _now_iso(), "data": data},
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-WMS-Signature": sign_webhook(self.webhook_secret, timestamp, body),
            "X-WMS-Timestamp": timestamp,
            "X-WMS-Delivery": event_id,
        }
        delivery: dict[str, Any] = {"id": event_id, "type": event_type, "status": None}
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(self.webhook_url, content=body, headers=headers)
            delivery["status"] = response.status_code
        except httpx.HTTPError as exc:
            delivery["error"] = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(delivery)
        return delivery


def _page(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    params = request.query_params
    filtered = [
        item
        for item in items
        if params.get("sku") in (None, item["sku"])
        and params.get("location") in (None, item["location"])
    ]
    size = max(1, min(int(params.get("page_size", "200")), 1000))
    start = int(base64.urlsafe_b64decode(params["cursor"]).decode()) if params.get("cursor") else 0
    end = start + size
    next_cursor = (
        base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(filtered) else None
    )
    return {"items": filtered[start:end], "next_cursor": next_cursor}


def create_app(sandbox: WmsSandbox) -> FastAPI:
    """The WMS contract under ``/v1``, the control API under ``/_sandbox``."""
    app = FastAPI(title="WMS sandbox", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        if not request.url.path.startswith("/v1/"):
            response: Response = await call_next(request)
            return response
        if request.headers.get("Authorization") != f"Bearer {sandbox.api_key}":
            response = _error(401, "unauthorized", "missing or wrong bearer API key")
        else:
            response = sandbox.admit() or await call_next(request)
        sandbox.requests.append((request.method, request.url.path, response.status_code))
        return response

    @app.get("/v1/inventory")
    async def inventory(request: Request) -> dict[str, Any]:
        return _page(request, sandbox.inventory)

    @app.get("/v1/allocations")
    async def allocations(request: Request) -> dict[str, Any]:
        return _page(request, sandbox.allocations)

    @app.post("/v1/return-expectations")
    async def expect_return(request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return _error(400, "idempotency_key_required", "send an Idempotency-Key header")
        body = await request.json()
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key in sandbox.idempotency:
            seen, answer = sandbox.idempotency[key]
            if seen != fingerprint:
                return _error(409, "idempotency_key_reused", "key was used with another body")
            return JSONResponse(answer, 200)
        missing = [
            name for name in ("rma_ref", "order_ref", "location", "lines") if not body.get(name)
        ]
        if missing:
            return _error(422, "invalid", f"missing fields: {', '.join(missing)}")
        expectation = {
            "expectation_id": f"exp_{len(sandbox.expectations) + 1:06d}",
            "status": "expected",
            **body,
        }
        sandbox.expectations[expectation["expectation_id"]] = expectation
        sandbox.idempotency[key] = (fingerprint, expectation)
        return JSONResponse(expectation, 201)

    @app.post("/v1/pick-tasks/{task_id}/cancel")
    async def cancel_pick(task_id: str) -> Response:
        task = sandbox.pick_tasks.get(task_id)
        if task is None:
            return _error(404, "not_found", f"pick task {task_id} does not exist")
        if task["status"] == "picked":
            return _error(409, "already_picked", f"pick task {task_id} is already picked")
        task["status"] = "cancelled"
        return JSONResponse(task, 200)

    # -- control API ------------------------------------------------------------------------

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        sandbox.reset()
        return {"ok": True}

    @app.post("/_sandbox/inventory")
    async def seed_inventory(request: Request) -> dict[str, Any]:
        for item in await request.json():
            sandbox.seed_inventory(
                item["sku"], item["location"], int(item["on_hand"]), int(item.get("allocated", 0))
            )
        return {"count": len(sandbox.inventory)}

    @app.post("/_sandbox/pick-tasks")
    async def seed_pick_task(request: Request) -> dict[str, Any]:
        task: dict[str, Any] = dict(await request.json())
        task.setdefault("status", "open")
        sandbox.pick_tasks[task["task_id"]] = task
        return task

    @app.post("/_sandbox/faults")
    async def faults(request: Request) -> dict[str, bool]:
        body = await request.json()
        for name in ("fail_next", "fail_status", "throttle_next", "retry_after_seconds", "burst"):
            if name in body:
                setattr(sandbox.faults, name, None if body[name] is None else int(body[name]))
        if "window_seconds" in body:
            sandbox.faults.window_seconds = float(body["window_seconds"])
        return {"ok": True}

    @app.post("/_sandbox/webhook")
    async def configure_webhook(request: Request) -> dict[str, bool]:
        body = await request.json()
        sandbox.webhook_url = body["url"]
        sandbox.webhook_secret = body.get("secret", sandbox.webhook_secret)
        return {"ok": True}

    @app.post("/_sandbox/emit/{event_type}")
    async def emit(event_type: str, request: Request) -> dict[str, Any]:
        data = await request.json()
        if event_type == "return_receipt.received":
            data.setdefault("receipt_id", f"rcpt_{uuid.uuid4().hex[:8]}")
            data.setdefault("received_at", _now_iso())
        return await sandbox.emit(event_type, data)

    @app.get("/_sandbox/requests")
    async def requests_log() -> dict[str, Any]:
        return {"requests": [list(item) for item in sandbox.requests]}

    return app


async def _serve(host: str, port: int) -> None:  # pragma: no cover - manual use
    import uvicorn

    await uvicorn.Server(uvicorn.Config(WmsSandbox().app, host=host, port=port)).serve()


if __name__ == "__main__":  # pragma: no cover - manual use
    asyncio.run(_serve("127.0.0.1", 8026))
