"""The OpenAPI document says what the guards do: every error a route can answer is listed.

Guarded operations get 401/403/429/503, mutating ones also the ``Idempotency-Key`` header and
400/409, operations with path parameters 404, and deprecated ones ``deprecated: true`` with
their ``Deprecation``/``Sunset`` headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from retailsync.api.auth import ScopeGuard
from retailsync.api.idempotency import (
    HEADER,
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    MUTATING_METHODS,
    Idempotency,
)
from retailsync.api.problems import PROBLEM_DESCRIPTIONS, PROBLEM_JSON
from retailsync.api.versioning import DeprecationNotice

_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def install_governed_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that documents the guards (built once, cached)."""
    generate = app.openapi

    def governed_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_governance(generate(), app.routes)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = governed_openapi  # type: ignore[method-assign]


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _dependency_calls(dependency)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[RouteContext]:
    """Every API route of an application, as served: with the dependencies and prefixes of
    every router it was included through."""
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_guards(route: RouteContext) -> list[ScopeGuard]:
    """The scope guards a route runs (its own and its routers')."""
    return [call for call in _dependency_calls(route.dependant) if isinstance(call, ScopeGuard)]


def document_governance(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add what the guards and deprecation notices do to ``schema`` (in place)."""
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        path = route.path_format or ""
        path_item = schema.get("paths", {}).get(path, {})
        guards = route_guards(route)
        notices = [
            call
            for call in _dependency_calls(route.dependant)
            if isinstance(call, DeprecationNotice)
        ]
        for method in route.methods or ():
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            statuses = [404] if "{" in path else []
            if guards:
                statuses += [401, 403, 429, 503]
                scopes = ", ".join(f"`{guard.scope.value}`" for guard in guards)
                _append_description(operation, f"Requires scope {scopes}.")
                if method in MUTATING_METHODS:
                    statuses += [400, 409, 422]
                    _document_idempotency_key(operation, guards)
            for status in statuses:
                operation.setdefault("responses", {}).setdefault(
                    str(status),
                    {
                        "description": PROBLEM_DESCRIPTIONS[status],
                        "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
                    },
                )
            if notices:
                _document_deprecation(operation)


def _append_description(operation: dict[str, Any], text: str) -> None:
    existing = operation.get("description")
    operation["description"] = f"{existing}\n\n{text}" if existing else text


def _document_idempotency_key(operation: dict[str, Any], guards: list[ScopeGuard]) -> None:
    required = any(guard.idempotency is Idempotency.REQUIRED for guard in guards)
    parameters = operation.setdefault("parameters", [])
    if any(p.get("in") == "header" and p.get("name") == HEADER for p in parameters):
        return
    parameters.append(
        {
            "name": HEADER,
            "in": "header",
            "required": required,
            "description": "A unique value per intended change (e.g. a UUID); repeat it when "
            "retrying to get the first response instead of a second effect.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KEY_LENGTH,
                "pattern": KEY_PATTERN,
            },
        }
    )


def _document_deprecation(operation: dict[str, Any]) -> None:
    operation["deprecated"] = True
    headers = {
        "Deprecation": {
            "description": "When this route was deprecated (RFC 9745)",
            "schema": {"type": "string"},
        },
        "Sunset": {
            "description": "When this route stops working (RFC 8594)",
            "schema": {"type": "string"},
        },
    }
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            response.setdefault("headers", {}).update(headers)
