"""Every route in the OpenAPI document refuses a caller without credentials (401) or without
its scope (403). A new route that forgets its guard fails here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governed_api_support import IssueKey

from retailsync.api.scopes import Scope

#: Open without credentials; the webhook ingress authenticates each vendor's signature.
PUBLIC = {
    ("GET", "/v1/health"),
    ("GET", "/v1/ready"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/docs"),
    ("POST", "/v1/webhooks/{connector}"),
}


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _required_scopes(operation: dict[str, Any]) -> set[str]:
    return {
        scope
        for requirement in operation.get("security", [])
        for scopes in requirement.values()
        for scope in scopes
    }


def test_the_document_lists_the_admin_routes(app: FastAPI) -> None:
    paths = {(method, path) for method, path, _ in _operations(app)}
    assert ("POST", "/v1/admin/clients") in paths
    assert ("GET", "/v1/admin/audit") in paths


def test_every_route_refuses_a_caller_without_credentials_or_scope(
    app: FastAPI, client: TestClient, issue_key: IssueKey
) -> None:
    checked = 0
    for method, path, operation in _operations(app):
        if (method, path) in PUBLIC:
            continue
        url = _concrete(path)
        anonymous = client.request(method, url)
        assert anonymous.status_code == 401, f"{method} {path} answers without credentials"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        required = _required_scopes(operation)
        assert len(required) == 1, f"{method} {path} documents no single scope: {required}"
        others = [scope.value for scope in Scope if scope.value not in required]
        key = issue_key(*others, name=f"without {required}")
        refused = client.request(method, url, headers={"X-API-Key": key})
        assert refused.status_code == 403, f"{method} {path} answers without its scope"
        assert refused.json()["required_scope"] in required
        for status in ("401", "403", "429"):
            assert status in operation["responses"], f"{method} {path} lacks {status} in docs"
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("path", ["/v1/health", "/v1/ready", "/v1/openapi.json", "/v1/docs"])
def test_the_public_routes_stay_public(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


#: Mutating routes whose payload carries its own identity, so the key is optional (honoured
#: when sent): a CloudEvent's source + id already makes a re-sent batch a no-op.
IDEMPOTENT_BY_PAYLOAD = {("POST", "/v1/events")}


def test_mutating_routes_document_the_idempotency_key(app: FastAPI) -> None:
    for method, path, operation in _operations(app):
        if method == "GET" or (method, path) in PUBLIC:
            continue
        headers = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}
        required = (method, path) not in IDEMPOTENT_BY_PAYLOAD
        assert headers["Idempotency-Key"]["required"] is required, f"{method} {path}"
        assert {"400", "409", "422"} <= set(operation["responses"]), f"{method} {path}"
