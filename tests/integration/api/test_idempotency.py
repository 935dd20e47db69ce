"""Idempotency-Key: a repeat gets the first response, a different request with the same key
is refused, and a request still running blocks its duplicate instead of running twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from governed_api_support import GovernanceFactory, IssueKey, new_idempotency_key

from retailsync.api.app import create_app
from retailsync.api.auth import require_scope
from retailsync.api.idempotency import Idempotency, IdempotencyStore
from retailsync.api.settings import IdempotencySettings
from retailsync.api.tables import api_clients, idempotency_keys
from retailsync.bootstrap import Hub
from retailsync.db import create_engine_for, upgrade_database

CLIENTS = "/v1/admin/clients"
NEW_CLIENT = {"name": "storefront", "scopes": ["experience:read"]}


def _post(client: TestClient, key: str | None, body: object, admin_key: str) -> httpx.Response:
    headers = {"X-API-Key": admin_key}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(CLIENTS, json=body, headers=headers)


def _client_count(hub: Hub) -> int:
    with hub.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(api_clients)).scalar_one()


def test_a_repeated_request_gets_the_first_response_and_runs_once(
    client: TestClient, hub: Hub, admin_key: str
) -> None:
    key = new_idempotency_key()
    first = _post(client, key, NEW_CLIENT, admin_key)
    assert first.status_code == 201
    before = _client_count(hub)
    again = _post(client, key, NEW_CLIENT, admin_key)
    assert again.status_code == 201
    assert again.json() == first.json()  # the same key, shown again to the same caller
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _client_count(hub) == before


def test_the_same_key_with_another_body_is_422(client: TestClient, admin_key: str) -> None:
    key = new_idempotency_key()
    assert _post(client, key, NEW_CLIENT, admin_key).status_code == 201
    response = _post(client, key, {**NEW_CLIENT, "name": "other"}, admin_key)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency-key-reused")


def test_keys_belong_to_one_client(client: TestClient, admin_key: str, issue_key: IssueKey) -> None:
    other_admin = issue_key("admin", name="second admin")
    key = new_idempotency_key()
    assert _post(client, key, NEW_CLIENT, admin_key).status_code == 201
    second = _post(client, key, NEW_CLIENT, other_admin)
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers


def test_a_mutating_route_without_the_header_is_400_naming_it(
    client: TestClient, admin_key: str
) -> None:
    response = _post(client, None, NEW_CLIENT, admin_key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


def test_an_overlong_key_is_400(client: TestClient, admin_key: str) -> None:
    response = _post(client, "k" * 256, NEW_CLIENT, admin_key)
    assert response.status_code == 400
    assert response.json()["type"].endswith("/idempotency-key-invalid")


def test_an_invalid_body_does_not_use_up_the_key(client: TestClient, admin_key: str) -> None:
    key = new_idempotency_key()
    assert _post(client, key, {"name": "x", "scopes": []}, admin_key).status_code == 422
    # The request never ran; the corrected request may use the same key.
    assert _post(client, key, NEW_CLIENT, admin_key).status_code == 201


# --- routes of a test application: a slow one and a failing one ----------------------------


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def work_app(hub: Hub, build_governance: GovernanceFactory, gate: threading.Event) -> FastAPI:
    app = create_app(hub, governance=build_governance())
    router = APIRouter(prefix="/v1/test-work", dependencies=[require_scope("process:write")])
    calls = {"slow": 0, "flaky": 0, "optional": 0}
    entered = threading.Event()
    app.state.calls = calls
    app.state.entered = entered

    @router.post("/slow", status_code=202)
    def slow() -> dict[str, int]:
        calls["slow"] += 1
        entered.set()
        assert gate.wait(10)
        return {"run": calls["slow"]}

    @router.post("/flaky")
    def flaky() -> dict[str, int]:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("downstream fell over")
        return {"run": calls["flaky"]}

    app.include_router(router)
    optional = APIRouter(
        prefix="/v1/test-work",
        dependencies=[require_scope("process:write", idempotency=Idempotency.OPTIONAL)],
    )

    @optional.post("/optional")
    def optional_key() -> dict[str, int]:
        calls["optional"] += 1
        return {"run": calls["optional"]}

    app.include_router(optional)
    return app


@pytest.fixture
def worker_headers(issue_key: IssueKey) -> dict[str, str]:
    return {"X-API-Key": issue_key("process:write")}


@pytest.fixture
def work_client(work_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(work_app, raise_server_exceptions=False) as client:
        yield client


def test_a_duplicate_while_the_first_still_runs_is_409_and_nothing_runs_twice(
    work_app: FastAPI,
    work_client: TestClient,
    worker_headers: dict[str, str],
    gate: threading.Event,
) -> None:
    headers = {**worker_headers, "Idempotency-Key": new_idempotency_key()}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(work_client.post, "/v1/test-work/slow", headers=headers)
        assert work_app.state.entered.wait(10)
        duplicate = work_client.post("/v1/test-work/slow", headers=headers)
        gate.set()
        first_response = first.result(10)
    assert duplicate.status_code == 409
    assert duplicate.json()["title"] == "Request with this key is still in progress"
    assert duplicate.headers["retry-after"]
    assert first_response.status_code == 202
    replay = work_client.post("/v1/test-work/slow", headers=headers)
    assert replay.status_code == 202
    assert replay.json() == {"run": 1}
    assert work_app.state.calls["slow"] == 1


def test_a_server_error_releases_the_key_so_a_retry_runs(
    work_app: FastAPI, work_client: TestClient, worker_headers: dict[str, str]
) -> None:
    headers = {**worker_headers, "Idempotency-Key": new_idempotency_key()}
    assert work_client.post("/v1/test-work/flaky", headers=headers).status_code == 500
    retry = work_client.post("/v1/test-work/flaky", headers=headers)
    assert retry.status_code == 200
    assert retry.json() == {"run": 2}
    assert work_client.post("/v1/test-work/flaky", headers=headers).json() == {"run": 2}


def test_optional_routes_run_without_a_key_and_dedupe_with_one(
    work_app: FastAPI, work_client: TestClient, worker_headers: dict[str, str]
) -> None:
    assert work_client.post("/v1/test-work/optional", headers=worker_headers).status_code == 200
    keyed = {**worker_headers, "Idempotency-Key": new_idempotency_key()}
    work_client.post("/v1/test-work/optional", headers=keyed)
    work_client.post("/v1/test-work/optional", headers=keyed)
    assert work_app.state.calls["optional"] == 2


# --- the store on both databases -------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    url = str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    upgrade_database(url)
    return url


def test_the_store_claims_once_expires_stale_claims_and_purges(store_url: str) -> None:
    from retailsync.api.idempotency import StoredResponse
    from retailsync.api.problems import ProblemError

    now = [datetime(2026, 11, 1, 12, 0, tzinfo=UTC)]
    engine = create_engine_for(store_url)
    store = IdempotencyStore(
        engine,
        IdempotencySettings(retention_hours=24, in_progress_timeout_seconds=60),
        clock=lambda: now[0],
    )
    try:
        claim = store.claim("apikey:a", "k1", "f1")
        with pytest.raises(ProblemError) as in_progress:
            store.claim("apikey:a", "k1", "f1")
        assert in_progress.value.status == 409
        now[0] += timedelta(seconds=61)  # the first holder died: the key is free again
        claim = store.claim("apikey:a", "k1", "f1")
        store.complete(claim, StoredResponse(status=201, headers=[("x-a", "1")], body=b"{}"))
        with pytest.raises(ProblemError) as conflict:
            store.claim("apikey:a", "k1", "f2")
        assert conflict.value.status == 422
        now[0] += timedelta(hours=25)
        assert store.purge_expired() == 1
        with engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(idempotency_keys)
            ).scalar_one()
        assert count == 0
    finally:
        engine.dispose()
