"""Request plumbing: trace context in and out, one access-log line, body size limit."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailsync.observability.logging import get_logger
from retailsync.observability.tracecontext import TraceParent, current_trace

_log = get_logger("retailsync.api.access")


class TraceContextMiddleware:
    """Accept or start a W3C trace, expose it to handlers and logs, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        incoming = TraceParent.parse(request.headers.get("traceparent"))
        trace = incoming.child() if incoming else TraceParent.generate()
        scope.setdefault("state", {})["trace"] = trace
        token = current_trace.set(trace)
        started = time.perf_counter()
        status_holder: dict[str, int] = {}

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"traceparent", trace.header.encode()))
                headers.append((b"x-correlation-id", trace.trace_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            _log.info(
                "request",
                method=request.method,
                path=request.url.path,
                status=status_holder.get("status", 500),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            current_trace.reset(token)


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 problem+json, before reading them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from retailsync.api.problems import problem_response

        response: Response = problem_response(
            Request(scope, receive),
            413,
            problem="body-too-large",
            detail=f"Request body exceeds the limit of {self.max_bytes} bytes.",
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass
