"""The agent panel: one order across every system, and the actions the agent's scope allows.

``/console/agent/orders/{id}`` fits a service desk's sidebar iframe (``?embed=1`` drops the
navigation). Every action form carries an ``Idempotency-Key`` made when the page was
rendered; the key names the workflow exactly as in the process API
(:func:`retailsync.workflows.process.workflow_id_for`), so a double click, a resubmitted form
or a retry after a timeout finds the same workflow and never starts a second one.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from retailsync.api.scopes import Scope
from retailsync.console.order360 import Order360, order_360
from retailsync.console.web import (
    AGENT_FRAME_ANCESTORS,
    SECURITY_HEADERS,
    flash,
    gate,
    gate_post,
    hub_of,
    redirect,
    render,
)

router = APIRouter()

ORDER_ID = r"^[A-Za-z0-9_.:\-]{1,100}$"
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
ACTIONS = {
    "refunds": "Refund",
    "returns": "Return",
    "replacements": "Replacement",
    "cancellations": "Cancellation",
}
#: The fields each action's form asks for (the process's request model validates them).
ACTION_FIELDS = {
    "refunds": ("amount", "currency", "payment_ref", "lines", "reason", "case_ref"),
    "returns": ("payment_ref", "lines", "case_ref"),
    "replacements": ("payment_ref", "lines", "reason", "case_ref"),
    "cancellations": ("payment_ref", "reason", "case_ref"),
}


def _panel_headers() -> dict[str, str]:
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", f"frame-ancestors {AGENT_FRAME_ANCESTORS}"
    )
    return {"Content-Security-Policy": policy}


def available_actions() -> dict[str, str | None]:
    """Each action and why it is not available (None when it is)."""
    result: dict[str, str | None] = {}
    try:
        from retailsync.workflows.requests import ProcessNotAvailable, request_model
    except ImportError:  # pragma: no cover - the workflows package ships with the hub
        return dict.fromkeys(ACTIONS, "the workflow runtime is not installed")
    for kind in ACTIONS:
        try:
            request_model(kind)
            result[kind] = None
        except ProcessNotAvailable as exc:
            result[kind] = str(exc)
    return result


async def processes_for(order_id: str, limit: int = 300) -> list[dict[str, Any]]:
    """Processes started for ``order_id`` among the most recent ``limit`` runs."""
    from retailsync.console.operations import _workflow_state, _workflows_launched

    if not _workflows_launched():
        return []
    from dbos import DBOS

    rows = await DBOS.list_workflows_async(
        limit=limit, sort_desc=True, load_input=True, load_output=False
    )
    mine = []
    for row in rows:
        inputs = getattr(row, "input", None)
        args = inputs.get("args") if isinstance(inputs, dict) else None
        request = args[0] if args and isinstance(args[0], dict) else {}
        if request.get("order_id") == order_id:
            mine.append(row)
    states = await asyncio.gather(*(_workflow_state(row.workflow_id) for row in mine))
    return [
        {
            "workflow_id": row.workflow_id,
            "workflow": row.name,
            "status": row.status,
            "state": state.get("state"),
        }
        for row, state in zip(mine, states, strict=True)
    ]


def _erp_breaker(request: Request) -> str | None:
    downstreams = getattr(request.app.state, "downstreams", None) or getattr(
        hub_of(request), "downstreams", None
    )
    if downstreams is None:
        return None
    try:
        return str(downstreams["erp"].breaker.state.value)
    except Exception:  # no ERP downstream configured in this hub
        return None


@router.get("/agent")
async def order_lookup(request: Request, order: str = "") -> Response:
    user = await gate(request, Scope.EXPERIENCE_READ)
    if isinstance(user, Response):
        return user
    order = order.strip()
    if order and re.match(ORDER_ID, order):
        return redirect(f"/console/agent/orders/{quote(order, safe='')}")
    return render(
        request,
        "order_lookup.html",
        {
            "user": user,
            "title": "Order lookup",
            "error": "That is not an order id." if order else None,
            "order": order,
        },
        status_code=422 if order else 200,
    )


@router.get("/agent/orders/{order_id}")
async def agent_panel(
    request: Request,
    order_id: Annotated[str, Path(pattern=ORDER_ID)],
    embed: bool = False,
) -> Response:
    user = await gate(request, Scope.EXPERIENCE_READ)
    if isinstance(user, Response):
        return user
    engine = hub_of(request).engine
    view: Order360 = await asyncio.to_thread(
        order_360, engine, order_id, now=datetime.now(UTC), erp_breaker=_erp_breaker(request)
    )
    view.processes = await processes_for(order_id)
    can_act = user.can(Scope.PROCESS_WRITE)
    return render(
        request,
        "agent_order.html",
        {
            "user": user,
            "title": f"Order {order_id}",
            "o": view,
            "embedded": embed,
            "can_act": can_act,
            "actions": available_actions() if can_act else {},
            "action_labels": ACTIONS,
            "action_fields": ACTION_FIELDS,
            "idempotency_key": str(uuid.uuid4()),
        },
        status_code=200 if view.found else 404,
        headers=_panel_headers(),
    )


def _lines(text: str) -> list[dict[str, Any]]:
    """``SKU-1:2, SKU-2:1`` -> refund lines."""
    lines = []
    for part in re.split(r"[,\n]", text):
        part = part.strip()
        if not part:
            continue
        sku, _, quantity = part.partition(":")
        lines.append({"sku": sku.strip(), "quantity": int(quantity.strip() or "1")})
    return lines


def _payload(kind: str, order_id: str, form: dict[str, Any]) -> dict[str, Any]:
    """The process request from the action's form fields (see :data:`ACTION_FIELDS`)."""
    fields = ACTION_FIELDS[kind]
    payload: dict[str, Any] = {
        "order_id": order_id,
        "case_ref": (form.get("case_ref") or "").strip() or None,
        "ordered_at": (form.get("ordered_at") or "").strip() or None,
        "customer_id": (form.get("customer_id") or "").strip() or None,
    }
    if "payment_ref" in fields:
        payload["payment_ref"] = (form.get("payment_ref") or "").strip() or None
    if "amount" in fields:
        payload["amount"] = {
            "amount": (form.get("amount") or "").strip(),
            "currency": (form.get("currency") or "").strip().upper(),
        }
    if "lines" in fields:
        payload["lines"] = _lines(form.get("lines") or "")
    if "reason" in fields and (form.get("reason") or "").strip():
        payload["reason"] = form["reason"].strip()
    return payload


@router.post("/agent/orders/{order_id}/{kind}")
async def start_action(
    request: Request,
    order_id: Annotated[str, Path(pattern=ORDER_ID)],
    kind: Annotated[str, Path(pattern="^(refunds|returns|replacements|cancellations)$")],
) -> Response:
    gated = await gate_post(request, Scope.PROCESS_WRITE)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    embed = form.get("embed") == "1"
    back = f"/console/agent/orders/{quote(order_id, safe='')}" + ("?embed=1" if embed else "")
    response = redirect(back)
    key = request.headers.get("Idempotency-Key") or form.get("idempotency_key") or ""
    if not IDEMPOTENCY_KEY.match(key):
        flash(
            request,
            response,
            "The form has no valid idempotency key; reload the page.",
            kind="error",
        )
        return response
    from pydantic import ValidationError

    from retailsync.console.operations import _workflows_launched
    from retailsync.workflows.process import workflow_id_for
    from retailsync.workflows.requests import ProcessNotAvailable, request_model
    from retailsync.workflows.service import start_process

    if not _workflows_launched():
        flash(request, response, "The workflow runtime is not running in this hub.", kind="error")
        return response
    try:
        payload = _payload(kind, order_id, form)
        payload |= {
            "requested_by": user.name,
            "requested_at": datetime.now(UTC).isoformat(),
            "correlation_id": request.headers.get("traceparent"),
        }
        request_model(kind).model_validate(payload)
    except ProcessNotAvailable as exc:
        flash(request, response, f"Not started: {exc}.", kind="error")
        return response
    except (ValidationError, ValueError) as exc:
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        flash(
            request,
            response,
            f"Not started: the {kind} request is not valid ({detail}).",
            kind="error",
        )
        return response
    workflow_id = workflow_id_for(kind, user.principal.client_id, key)
    created = await start_process(kind, workflow_id, payload)
    label = ACTIONS[kind]
    if created:
        flash(request, response, f"{label} started as workflow {workflow_id}.")
    else:
        flash(
            request,
            response,
            f"{label} was already started by this request (workflow {workflow_id}); "
            "nothing was started twice.",
        )
    return response
