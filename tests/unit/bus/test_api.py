"""POST /v1/events: per-event outcomes, problem+json for rejected events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from retailsync.bus.api import router
from retailsync.bus.backend import BackendConfig, BusOptions
from retailsync.bus.backends.sql import create_backend
from retailsync.db import upgrade_database
from retailsync.domain.events import CloudEvent


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    upgrade_database(url)
    app = FastAPI()
    app.include_router(router)
    app.state.bus = create_backend(
        BackendConfig(database_url=url, options=BusOptions(max_batch_size=3))
    )
    with TestClient(app) as test_client:
        yield test_client


def _event(n: int) -> dict:
    return CloudEvent.new(
        type="retailsync.order.created", source="shop", id=f"e{n}", subject="order/1", data={}
    ).to_json_dict()


def test_all_stored_is_202_with_per_event_results(client: TestClient) -> None:
    response = client.post("/v1/events", json=[_event(1), _event(1)])
    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "duplicate"]
    again = client.post("/v1/events", json=[_event(1)])
    assert again.json()["results"][0]["status"] == "duplicate"


def test_mixed_batch_is_207_problem_listing_bad_indexes(client: TestClient) -> None:
    bad = {**_event(2), "time": "yesterday"}
    response = client.post("/v1/events", json=[_event(3), bad])
    assert response.status_code == 207
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/partially-rejected-events")
    assert body["errors"] == [
        {
            "index": 1,
            "errors": [{"name": "time", "reason": body["errors"][0]["errors"][0]["reason"]}],
        }
    ]
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]


def test_nothing_valid_is_422_and_limits_are_enforced(client: TestClient) -> None:
    response = client.post("/v1/events", json=[{"id": "x"}])
    assert response.status_code == 422
    assert response.json()["errors"][0]["index"] == 0
    assert client.post("/v1/events", json=[_event(n) for n in range(4)]).status_code == 413
    assert client.post("/v1/events", json={"not": "a batch"}).status_code == 400
    assert client.post("/v1/events", content=b"{").status_code == 400
