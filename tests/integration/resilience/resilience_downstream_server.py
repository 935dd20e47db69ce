"""A local downstream that can fail, throttle, slow down and recover on command.

Run as ``python resilience_downstream_server.py PORT``. It counts every data request with its
arrival time (so tests can check rate limits at the receiving side) and applies each
idempotency key's effect once, as a well-behaved ERP or payment API does.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

state: dict[str, Any] = {}


def reset() -> None:
    state.update(
        mode="ok",
        status=503,
        retry_after=None,
        delay=0.0,
        fail_next=0,
        arrivals=[],
        paths=Counter(),
        requests_by_key=Counter(),
        applied=Counter(),
        responses={},
    )


reset()


async def _misbehave() -> Response | None:
    """The failure currently ordered, or None to answer normally."""
    state["arrivals"].append(time.monotonic())
    if state["delay"]:
        await asyncio.sleep(state["delay"])
    failing = state["mode"] == "error" or state["fail_next"] > 0
    if state["fail_next"] > 0:
        state["fail_next"] -= 1
    if failing:
        headers = {}
        if state["retry_after"] is not None:
            headers["Retry-After"] = str(state["retry_after"])
        return JSONResponse({"error": "unavailable"}, status_code=state["status"], headers=headers)
    return None


async def get_order(request: Request) -> Response:
    order_id = request.path_params["order_id"]
    state["paths"][f"GET /orders/{order_id}"] += 1
    failure = await _misbehave()
    if failure is not None:
        return failure
    if order_id.startswith("missing"):
        return JSONResponse({"error": f"no order {order_id}"}, status_code=404)
    return JSONResponse({"id": order_id, "status": "shipped", "served_at": time.time()})


async def post_refund(request: Request) -> Response:
    key = request.headers.get("Idempotency-Key")
    body = await request.json()
    state["paths"]["POST /refunds"] += 1
    if key:
        state["requests_by_key"][key] += 1
    failure = await _misbehave()
    if failure is not None:
        return failure
    if body.get("amount", 0) < 0:
        return JSONResponse({"error": "amount must not be negative"}, status_code=422)
    if key and key in state["responses"]:
        return JSONResponse(state["responses"][key])
    if key:
        state["applied"][key] += 1
    answer = {"refund_id": f"R-{len(state['responses']) + 1}", "key": key, **body}
    if key:
        state["responses"][key] = answer
    return JSONResponse(answer, status_code=201)


async def control(request: Request) -> Response:
    body = await request.json()
    if body.pop("reset", False):
        reset()
    state.update(body)
    return JSONResponse({"ok": True})


async def stats(_: Request) -> Response:
    return JSONResponse(
        {
            "arrivals": state["arrivals"],
            "paths": dict(state["paths"]),
            "requests_by_key": dict(state["requests_by_key"]),
            "applied": dict(state["applied"]),
            "now": time.monotonic(),
        }
    )


app = Starlette(
    routes=[
        Route("/orders/{order_id}", get_order, methods=["GET"]),
        Route("/refunds", post_refund, methods=["POST"]),
        Route("/_control", control, methods=["POST"]),
        Route("/_stats", stats, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
