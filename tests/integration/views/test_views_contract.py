"""The System and Experience routes under the API's contract: each refuses callers without
credentials (401) or its scope (403), documents every error it can answer, and holds to its
OpenAPI document under generated input (schemathesis)."""

from __future__ import annotations

import re
import uuid

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from views_support import IssueKey

from retailsync.api.scopes import Scope

OURS = re.compile(r"^/v1/(system/|experience/orders)")


def _our_operations(app: FastAPI) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        if OURS.match(path)
        for method, operation in item.items()
    ]


def test_every_route_is_guarded_by_its_layer_scope(app: FastAPI, issue_key: IssueKey) -> None:
    operations = _our_operations(app)
    assert len(operations) == 10
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path, operation in operations:
            url = re.sub(r"\{[^}]+\}", "x", path)
            (requirement,) = {s for r in operation["security"] for v in r.values() for s in v}
            expected = "system:read" if path.startswith("/v1/system/") else "experience:read"
            assert requirement == expected, path
            assert client.request(method, url).status_code == 401, path
            others = [scope.value for scope in Scope if scope.value != expected]
            refused = client.request(method, url, headers={"X-API-Key": issue_key(*others)})
            assert refused.status_code == 403, path
            for status in ("401", "403", "404" if "{" in path else "401", "422", "429", "503"):
                assert status in operation["responses"], f"{path} does not document {status}"


def test_every_operation_honours_the_contract(app: FastAPI, issue_key: IssueKey) -> None:
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app).include(
        path_regex=OURS.pattern
    )
    credentials = {"X-API-Key": issue_key("system:read", "experience:read", name="contract")}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def honours_the_contract(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={**credentials, "Idempotency-Key": uuid.uuid4().hex})

        honours_the_contract()
