"""Rate limits per client and route class: 429 problem+json with Retry-After, then refill."""

from __future__ import annotations

from fastapi.testclient import TestClient
from governed_api_support import GovernanceFactory, IssueKey, ManualClock

from retailsync.api.app import create_app
from retailsync.api.settings import RateLimitSettings, RouteClassLimit
from retailsync.bootstrap import Hub

CLIENTS = "/v1/admin/clients"


def _limited_client(hub: Hub, build_governance: GovernanceFactory) -> TestClient:
    limits = RateLimitSettings(admin=RouteClassLimit(limit=6, period_seconds=60, burst=3))
    return TestClient(create_app(hub, governance=build_governance(rate_limits=limits)))


def test_a_client_over_its_limit_gets_429_with_retry_after(
    hub: Hub, build_governance: GovernanceFactory, admin_key: str, clock: ManualClock
) -> None:
    client = _limited_client(hub, build_governance)
    headers = {"X-API-Key": admin_key}
    assert [client.get(CLIENTS, headers=headers).status_code for _ in range(3)] == [200] * 3
    refused = client.get(CLIENTS, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 20  # (6 - 3) tokens refill over 60 s: one every 20 s
    assert refused.json()["route_class"] == "admin"
    clock.advance(retry_after)
    assert client.get(CLIENTS, headers=headers).status_code == 200


def test_each_client_has_its_own_budget(
    hub: Hub, build_governance: GovernanceFactory, admin_key: str, issue_key: IssueKey
) -> None:
    client = _limited_client(hub, build_governance)
    for _ in range(3):
        client.get(CLIENTS, headers={"X-API-Key": admin_key})
    assert client.get(CLIENTS, headers={"X-API-Key": admin_key}).status_code == 429
    other = issue_key("admin", name="another admin")
    assert client.get(CLIENTS, headers={"X-API-Key": other}).status_code == 200


def test_requests_without_valid_credentials_do_not_spend_a_clients_budget(
    hub: Hub, build_governance: GovernanceFactory, admin_key: str
) -> None:
    client = _limited_client(hub, build_governance)
    for _ in range(10):
        assert client.get(CLIENTS).status_code == 401
    assert client.get(CLIENTS, headers={"X-API-Key": admin_key}).status_code == 200


def test_limits_can_be_switched_off(
    hub: Hub, build_governance: GovernanceFactory, admin_key: str
) -> None:
    limits = RateLimitSettings(
        enabled=False, admin=RouteClassLimit(limit=2, period_seconds=60, burst=1)
    )
    client = TestClient(create_app(hub, governance=build_governance(rate_limits=limits)))
    statuses = {client.get(CLIENTS, headers={"X-API-Key": admin_key}).status_code for _ in range(5)}
    assert statuses == {200}
