"""A deprecated route says so on every response and in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from governed_api_support import GovernanceFactory, IssueKey

from retailsync.api.app import create_app
from retailsync.api.auth import require_scope
from retailsync.api.versioning import deprecation
from retailsync.bootstrap import Hub

DEPRECATED_AT = datetime(2026, 6, 1, tzinfo=UTC)
SUNSET = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
CHANGES = "https://retailsync.dev/changes/order-status"


@pytest.fixture
def old_app(hub: Hub, build_governance: GovernanceFactory) -> FastAPI:
    app = create_app(hub, governance=build_governance())
    old = APIRouter(
        prefix="/v1/system",
        dependencies=[
            # First, so that refusals by the guard carry the headers too.
            deprecation(
                deprecated_at=DEPRECATED_AT,
                sunset=SUNSET,
                link=CHANGES,
                successor="/v1/system/orders/{order_id}",
            ),
            require_scope("system:read"),
        ],
    )

    @old.get("/order-status/{order_id}")
    def order_status(order_id: str) -> dict[str, str]:
        return {"order_id": order_id, "status": "shipped"}

    app.include_router(old)
    return app


def test_every_response_carries_deprecation_and_sunset(
    old_app: FastAPI, issue_key: IssueKey
) -> None:
    client = TestClient(old_app)
    ok = client.get(
        "/v1/system/order-status/ord_1", headers={"X-API-Key": issue_key("system:read")}
    )
    refused = client.get("/v1/system/order-status/ord_1")
    assert ok.status_code == 200
    assert refused.status_code == 401
    for response in (ok, refused):
        assert response.headers["deprecation"] == f"@{int(DEPRECATED_AT.timestamp())}"
        assert response.headers["sunset"] == "Thu, 31 Dec 2026 23:59:59 GMT"
        links = response.headers.get_list("link")
        assert (
            '<https://retailsync.dev/changes/order-status>; rel="deprecation"; type="text/html"'
            in links
        )
        assert '</v1/system/orders/{order_id}>; rel="successor-version"' in links


def test_current_routes_carry_no_deprecation(client: TestClient, admin_key: str) -> None:
    response = client.get("/v1/admin/clients", headers={"X-API-Key": admin_key})
    assert "deprecation" not in response.headers
    assert "sunset" not in response.headers


def test_the_document_marks_the_route_deprecated(old_app: FastAPI) -> None:
    operation = old_app.openapi()["paths"]["/v1/system/order-status/{order_id}"]["get"]
    assert operation["deprecated"] is True
    assert {"Deprecation", "Sunset"} <= set(operation["responses"]["200"]["headers"])
    current = old_app.openapi()["paths"]["/v1/admin/clients"]["get"]
    assert "deprecated" not in current


def test_dates_must_be_aware_and_in_order() -> None:
    with pytest.raises(ValueError, match="timezone"):
        deprecation(deprecated_at=datetime(2026, 1, 1), sunset=SUNSET)
    with pytest.raises(ValueError, match="after its sunset"):
        deprecation(deprecated_at=SUNSET, sunset=DEPRECATED_AT)
