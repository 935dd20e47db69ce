"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://retailsync.dev/problems/"


class InvalidParam(BaseModel):
    """One offending input: where it is (``body.lines.0.quantity``) and what is wrong."""

    name: str
    reason: str


class Problem(BaseModel):
    """The RFC 9457 body, with ``invalid_params`` for validation errors."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    invalid_params: list[InvalidParam] | None = None


class ProblemError(Exception):
    """Raise from a route to answer with a specific problem."""

    def __init__(
        self,
        status: int,
        problem: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem = problem
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    *,
    problem: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    invalid_params: Sequence[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for ``request``."""
    trace = getattr(request.state, "trace", None)
    body = Problem(
        type=f"{PROBLEM_TYPE_BASE}{problem}" if problem else "about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        correlation_id=trace.trace_id if trace else None,
        invalid_params=list(invalid_params) if invalid_params else None,
        **extensions,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    request.state.validation_failed = True  # the route did not run (see idempotency)
    params = [
        InvalidParam(name=_location(error["loc"]), reason=error["msg"]) for error in exc.errors()
    ]
    names = ", ".join(p.name for p in params)
    return problem_response(
        request,
        422,
        problem="validation-error",
        title="Request is not valid",
        detail=f"Invalid input at: {names}",
        invalid_params=params,
    )


async def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(request, exc.status_code, detail=detail, headers=headers)


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        problem=exc.problem,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers or None,
        **exc.extensions,
    )


async def _unexpected_problem(request: Request, exc: Exception) -> JSONResponse:
    from retailsync.observability.logging import get_logger

    get_logger("retailsync.api").error(
        "unhandled error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc
    )
    return problem_response(
        request,
        500,
        problem="internal-error",
        detail="The hub failed to handle this request; the error is logged with its "
        "correlation id.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, validation errors included, answer as problem+json."""
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(Exception, _unexpected_problem)


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (e.g. a missing or invalid Idempotency-Key header)",
    401: "Missing or invalid credentials",
    403: "Credentials lack the scope for this route",
    404: "No such resource",
    409: "A request with this Idempotency-Key is still in progress",
    413: "Request body too large",
    422: "Request is not valid (or an Idempotency-Key reused with a different request)",
    429: "Rate limit exceeded; see Retry-After",
    500: "Unexpected error",
    503: "A service the hub depends on is unavailable; retry later",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these problem statuses."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": PROBLEM_DESCRIPTIONS[status],
        }
        for status in statuses
    }


#: Errors any route can answer; governed routes get 401/403/429 (and 400/409 when mutating)
#: added to their OpenAPI operation by :func:`retailsync.api.governance.document_governance`.
PROBLEM_RESPONSE_DOC = problem_responses(413, 422, 500)
