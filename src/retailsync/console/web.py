"""What every console route shares: templates, the sign-in gate, CSRF checks, flash messages."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from retailsync.api.clients import get_api_client
from retailsync.api.errors import UnknownApiClient
from retailsync.api.scopes import Principal, Scope
from retailsync.console.errors import ComponentUnavailable, CsrfRejected, InvalidSession
from retailsync.console.pages import PAGES, PREFIX, Page, visible_pages
from retailsync.console.session import (
    COOKIE_PATH,
    CSRF_FIELD,
    CSRF_HEADER,
    FLASH_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    ConsoleUser,
    Signer,
    check_csrf,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["PREFIX"] = PREFIX

#: Headers on every console page: no framing (the agent panel sets its own), no sniffing.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "Cache-Control": "no-store",
}
#: Where the agent panel may be embedded (the service desk's sidebar app).
AGENT_FRAME_ANCESTORS = "'self' https://*.zendesk.com https://*.zdassets.com"


def hub_of(request: Request) -> Any:
    hub = getattr(request.app.state, "hub", None)
    if hub is None:
        raise ComponentUnavailable("the hub", "build the app with retailsync.api.app.create_app")
    return hub


def signer_of(request: Request) -> Signer:
    signer = getattr(request.app.state, "console_signer", None)
    if not isinstance(signer, Signer):
        signer = Signer(hub_of(request).settings.secret_key)
        request.app.state.console_signer = signer
    return signer


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_secure(request),
        **kw,
    )


def _load_user(request: Request, session: ConsoleSession) -> ConsoleUser:
    hub = hub_of(request)
    with hub.engine.connect() as connection:
        try:
            client = get_api_client(connection, session.client_id)
        except UnknownApiClient:
            raise InvalidSession("unknown client") from None
    if not client.active:
        raise InvalidSession("the client was revoked")
    principal = Principal(
        client_id=client.id,
        name=client.name,
        scopes=frozenset(client.scopes),
        auth_method="console",
    )
    return ConsoleUser(principal=principal, session=session)


async def current_user(request: Request) -> ConsoleUser | None:
    """The signed-in user, or None (no, bad, expired cookie or revoked client)."""
    cached = getattr(request.state, "console_user", None)
    if isinstance(cached, ConsoleUser):
        return cached
    try:
        session = ConsoleSession.decode(signer_of(request), request.cookies.get(SESSION_COOKIE))
        user = await run_in_threadpool(_load_user, request, session)
    except InvalidSession:
        return None
    request.state.console_user = user
    return user


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":
        target = PREFIX + "/"
    return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)


async def gate(request: Request, scope: Scope) -> ConsoleUser | Response:
    """The user when signed in and holding ``scope``; else the sign-in redirect or a 403 page."""
    user = await current_user(request)
    if user is None:
        return login_redirect(request)
    if not user.can(scope):
        return render(
            request,
            "forbidden.html",
            {"user": user, "required_scope": scope.value, "title": "Not allowed"},
            status_code=403,
        )
    return user


async def gate_post(
    request: Request, scope: Scope
) -> tuple[ConsoleUser, dict[str, Any]] | Response:
    """Like :func:`gate` for a form POST, which must also carry the session's CSRF token.

    Returns the user and the form (multi-valued fields as lists under ``name[]``).
    """
    result = await gate(request, scope)
    if isinstance(result, Response):
        return result
    form = await request.form()
    submitted = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD) or "")
    try:
        check_csrf(result.csrf_token, submitted)
    except CsrfRejected as exc:
        return render(
            request,
            "error.html",
            {"user": result, "title": "Form expired", "message": str(exc)},
            status_code=403,
        )
    values: dict[str, Any] = {}
    for key in form:
        items = form.getlist(key)
        values[key] = str(items[-1]) if items else ""
        values[f"{key}[]"] = [str(item) for item in items]
    return result, values


def flash(request: Request, response: Response, text: str, *, kind: str = "ok") -> None:
    """Show ``text`` once on the next page this browser renders."""
    set_cookie(
        request,
        response,
        FLASH_COOKIE,
        signer_of(request).sign("flash", {"text": text[:500], "kind": kind, "at": time.time()}),
        max_age=60,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = signer_of(request).unsign("flash", raw)
    except InvalidSession:
        return None
    if time.time() - float(value.get("at", 0)) > 60:
        return None
    return {"text": str(value.get("text", "")), "kind": str(value.get("kind", "ok"))}


def active_page(path: str) -> str | None:
    """The navigation entry ``path`` belongs to (the longest matching page path)."""
    best: Page | None = None
    for page in PAGES:
        root = page.path.rstrip("/")
        matches = path.rstrip("/") == root if page.key == "overview" else path.startswith(root)
        if matches and (best is None or len(root) > len(best.path.rstrip("/"))):
            best = page
    return best.key if best else None


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    user: ConsoleUser | None = context.get("user")
    notice = _take_flash(request)
    full = {
        "nav": visible_pages(user.principal.scopes) if user else [],
        "csrf_token": user.csrf_token if user else "",
        "notice": notice,
        "now": datetime.now(UTC),
        "embedded": False,
        "active": active_page(request.url.path),
        **context,
    }
    response = templates.TemplateResponse(request, template, full, status_code=status_code)
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    if notice is not None:
        response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH)
    return response


def unavailable(request: Request, user: ConsoleUser, exc: ComponentUnavailable) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"user": user, "title": f"{exc.component} unavailable", "message": str(exc)},
        status_code=503,
    )
