"""The API skeleton: health, readiness, problem+json everywhere, trace context echoed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from retailsync.api.app import create_app
from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import ApiSettings, Settings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class _OrderIn(BaseModel):
    order_id: str
    lines: list[_Line]


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = bootstrap(Settings(database_url=sqlite_url, api=ApiSettings(max_body_bytes=2048)))
    yield hub
    hub.close()


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    app = create_app(hub)

    @app.post("/v1/_echo-order")
    async def echo_order(order: _OrderIn) -> _OrderIn:
        return order

    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/v1/health").json()["status"] == "ok"
    ready = client.get("/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


def test_ready_reports_unreachable_database(hub: Hub, client: TestClient) -> None:
    from retailsync.db import create_engine_for

    hub.engine = create_engine_for("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/v1/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"


def test_malformed_body_names_the_offending_field(client: TestClient) -> None:
    response = client.post(
        "/v1/_echo-order", json={"order_id": "ord_1", "lines": [{"sku": "A", "quantity": 0}]}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["title"] == "Request is not valid"
    assert [p["name"] for p in problem["invalid_params"]] == ["body.lines.0.quantity"]
    assert "body.lines.0.quantity" in problem["detail"]


def test_invalid_json_is_a_problem_too(client: TestClient) -> None:
    response = client.post(
        "/v1/_echo-order", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_oversized_body_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/_echo-order", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("/body-too-large")


def test_traceparent_is_echoed_in_response_and_log(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from retailsync.observability.logging import configure_logging

    configure_logging("INFO")
    response = client.get("/v1/health", headers={"traceparent": TRACEPARENT})
    echoed = response.headers["traceparent"]
    assert echoed.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert response.headers["x-correlation-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("event") == "request"]
    assert access, "no access log line"
    assert access[-1]["correlation_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert access[-1]["path"] == "/v1/health"


def test_a_trace_is_started_when_none_is_sent(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert len(response.headers["traceparent"].split("-")[1]) == 32


def test_unexpected_errors_are_problem_json_without_internals(app: FastAPI) -> None:
    @app.get("/v1/_boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/_boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internal detail" not in response.text
