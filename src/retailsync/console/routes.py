"""The console router (``/console``): sign-in, the pages, and their form actions.

Every page checks the signed-in client's scope (:mod:`retailsync.console.pages`); every form
POST checks the session's CSRF token and answers with a redirect (post/redirect/get), so the
pages work without JavaScript. htmx, when present, only refreshes parts of a page.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from retailsync.api.errors import InvalidCredentials
from retailsync.api.scopes import Scope
from retailsync.bus.backend import BulkOutcome, EventBusBackend
from retailsync.console import agent, operations
from retailsync.console.errors import ComponentUnavailable, CsrfRejected
from retailsync.console.pages import PREFIX, visible_pages
from retailsync.console.queries import (
    AGE_LABELS,
    ROLE_LABELS,
    STATUS_CHOICES,
    ExceptionQuery,
    get_exception,
    list_exceptions,
)
from retailsync.console.session import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    check_csrf,
    check_login_token,
    new_login_token,
)
from retailsync.console.web import (
    HERE,
    current_user,
    flash,
    gate,
    gate_post,
    hub_of,
    redirect,
    render,
    set_cookie,
    signer_of,
    unavailable,
)
from retailsync.observability.traces import load_trace

router = APIRouter(prefix=PREFIX, include_in_schema=False)

STATIC_FILES = {
    "console.css": ("text/css", HERE / "static" / "console.css"),
    "console.js": ("text/javascript", HERE / "static" / "console.js"),
    "htmx.min.js": ("text/javascript", HERE / "static" / "htmx.min.js"),
}


def _bus(request: Request) -> EventBusBackend:
    bus = getattr(request.app.state, "bus", None)
    if not isinstance(bus, EventBusBackend):
        raise ComponentUnavailable(
            "the event bus", "start the hub with its bus (app.state.bus) to act on exceptions"
        )
    return bus


def _safe_next(target: str | None) -> str:
    """Only a path inside the console; never another site."""
    if not target:
        return f"{PREFIX}/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not parsed.path.startswith(PREFIX):
        return f"{PREFIX}/"
    return target


# ------------------------------------------------------------------------------------------
# Static files, sign-in
# ------------------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    media_type, path = STATIC_FILES[name]
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await current_user(request) is not None:
        return redirect(_safe_next(next))
    token, cookie = new_login_token(signer_of(request))
    response: Response = render(
        request, "login.html", {"title": "Sign in", "login_token": token, "next": _safe_next(next)}
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, cookie, max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form()] = "",
    login_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    signer = signer_of(request)
    error: str | None = None
    try:
        check_login_token(signer, request.cookies.get(LOGIN_CSRF_COOKIE), login_token)
    except CsrfRejected as exc:
        error = str(exc)
    client = None
    if error is None:
        governance = getattr(request.app.state, "governance", None)
        if governance is None:
            raise ComponentUnavailable("API governance", "build the app with create_app")
        try:
            client = await run_in_threadpool(governance.verify_api_key, api_key.strip())
        except InvalidCredentials as exc:
            error = f"Sign-in failed: {exc}."
    if client is None:
        token, cookie = new_login_token(signer)
        refused = render(
            request,
            "login.html",
            {"title": "Sign in", "login_token": token, "next": _safe_next(next), "error": error},
            status_code=401,
        )
        set_cookie(request, refused, LOGIN_CSRF_COOKIE, cookie, max_age=3600)
        return refused
    session = ConsoleSession.new(client.id)
    target = _safe_next(next)
    if target == f"{PREFIX}/" and Scope.ADMIN not in client.scopes:
        pages = visible_pages(frozenset(client.scopes))
        target = pages[0].path if pages else f"{PREFIX}/"
    response = redirect(target)
    set_cookie(request, response, SESSION_COOKIE, session.encode(signer))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await current_user(request)
    if user is not None:
        form = await request.form()
        try:
            check_csrf(user.csrf_token, str(form.get("csrf_token") or ""))
        except CsrfRejected as exc:
            return render(
                request,
                "error.html",
                {"user": user, "title": "Form expired", "message": str(exc)},
                status_code=403,
            )
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# ------------------------------------------------------------------------------------------
# Overview
# ------------------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    hub = hub_of(request)
    data = await operations.overview(request.app, hub)
    return render(request, "overview.html", {"user": user, "title": "Overview", **data})


# ------------------------------------------------------------------------------------------
# Exceptions
# ------------------------------------------------------------------------------------------


@router.get("/exceptions")
async def exceptions(request: Request) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    query = ExceptionQuery.parse(dict(request.query_params))
    page = await run_in_threadpool(
        list_exceptions, hub_of(request).engine, query, now=datetime.now(UTC)
    )
    return render(
        request,
        "exceptions.html",
        {
            "user": user,
            "title": "Exceptions",
            "page": page,
            "q": query,
            "age_labels": AGE_LABELS,
            "role_labels": ROLE_LABELS,
            "statuses": STATUS_CHOICES,
            "bus_running": isinstance(getattr(request.app.state, "bus", None), EventBusBackend),
        },
    )


@router.get("/exceptions/{entry_id}")
async def exception_detail(request: Request, entry_id: Annotated[int, Path(ge=1)]) -> Response:
    user = await gate(request, Scope.ADMIN)
    if isinstance(user, Response):
        return user
    engine = hub_of(request).engine
    detail = await run_in_threadpool(get_exception, engine, entry_id, now=datetime.now(UTC))
    if detail is None:
        return render(
            request,
            "error.html",
            {
                "user": user,
                "title": "No such exception",
                "message": f"There is no exception entry #{entry_id}; it may have been "
                "removed. Go back to the exception queue.",
            },
            status_code=404,
        )
    trace = None
    if detail.row.correlation_id:
        trace = await asyncio.to_thread(
            load_trace, engine, correlation_id=detail.row.correlation_id, limit=200
        )
    return render(
        request,
        "exception_detail.html",
        {
            "user": user,
            "title": f"Exception #{entry_id}",
            "d": detail,
            "trace": trace,
            "bus_running": isinstance(getattr(request.app.state, "bus", None), EventBusBackend),
        },
    )


def _outcome_text(verb: str, outcome: BulkOutcome) -> tuple[str, str]:
    parts = []
    if outcome.changed:
        ids = ", ".join(f"#{i}" for i in outcome.changed[:20])
        more = f" and {len(outcome.changed) - 20} more" if len(outcome.changed) > 20 else ""
        parts.append(f"{verb} {ids}{more}.")
    for entry_id, why in outcome.skipped[:10]:
        parts.append(f"#{entry_id} skipped: {why}.")
    if len(outcome.skipped) > 10:
        parts.append(f"{len(outcome.skipped) - 10} more skipped.")
    kind = "ok" if outcome.changed and not outcome.skipped else "error"
    if outcome.changed and outcome.skipped:
        kind = "warning"
    return " ".join(parts) or "Nothing was selected.", kind


@router.post("/exceptions/{entry_id}/{action}")
async def exception_action(
    request: Request,
    entry_id: Annotated[int, Path(ge=1)],
    action: Annotated[str, Path(pattern="^(retry|resolve|discard)$")],
) -> Response:
    gated = await gate_post(request, Scope.ADMIN)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    back = f"{PREFIX}/exceptions/{entry_id}"
    try:
        queue = _bus(request).exceptions
    except ComponentUnavailable as exc:
        return unavailable(request, user, exc)
    text = (form.get("note") or form.get("reason") or "").strip()
    if action == "retry":
        outcome = await queue.retry(entry_id, actor=user.actor, reason=text or None)
        message, kind = _outcome_text("Retry queued for", outcome)
    elif not text:
        response = redirect(back)
        what = "a note saying how it was resolved" if action == "resolve" else "a reason"
        flash(request, response, f"Nothing changed: {action} needs {what}.", kind="error")
        return response
    elif action == "resolve":
        outcome = await queue.resolve(entry_id, actor=user.actor, note=text)
        message, kind = _outcome_text("Resolved", outcome)
    else:
        outcome = await queue.discard(entry_id, actor=user.actor, reason=text)
        message, kind = _outcome_text("Discarded", outcome)
    response = redirect(back)
    flash(request, response, message, kind=kind)
    return response


@router.post("/exceptions-bulk/retry")
async def bulk_retry(request: Request) -> Response:
    gated = await gate_post(request, Scope.ADMIN)
    if isinstance(gated, Response):
        return gated
    user, form = gated
    back = f"{PREFIX}/exceptions"
    if form.get("back", "").startswith("?"):
        back += form["back"]
    ids: list[int] = []
    for raw in form.get("ids[]", []):
        try:
            ids.append(int(raw))
        except ValueError:
            continue
    response = redirect(back)
    if not ids:
        flash(request, response, "Select at least one exception to retry.", kind="error")
        return response
    try:
        queue = _bus(request).exceptions
    except ComponentUnavailable as exc:
        return unavailable(request, user, exc)
    outcome = await queue.retry(ids[:500], actor=user.actor, reason="bulk retry from the console")
    message, kind = _outcome_text("Retry queued for", outcome)
    flash(request, response, message, kind=kind)
    return response


# ------------------------------------------------------------------------------------------
# The other pages live in their own modules and share this router.
# ------------------------------------------------------------------------------------------

router.include_router(operations.router)
router.include_router(agent.router)
