"""GET /v1/experience/orders/{id}: the order 360 over HTTP, fresh while the ERP answers and
flagged stale (still answering) while it is slow or down; return eligibility per line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from views_support import IssueKey, OrderStory, erp_processing

from retailsync.bootstrap import Hub
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.ports.erp import ErpOrderState
from retailsync.resilience.errors import DownstreamUnavailable, UnknownReference
from retailsync.views import FreshnessPolicy, apply_event


@dataclass
class ScriptedErp:
    """The ERP at the edge of these tests: answers, is slow, or is down, as the test says."""

    mode: str = "up"
    delay: float = 2.0
    calls: list[str] = field(default_factory=list)

    async def get_order(self, order_id: str) -> ErpOrderState:
        self.calls.append(order_id)
        if self.mode == "down":
            raise DownstreamUnavailable("connection refused", downstream="erp")
        if self.mode == "unknown":
            raise UnknownReference(f"no sale for {order_id}", downstream="erp")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        return erp_processing(order_id)


@pytest.fixture
def erp(hub: Hub) -> ScriptedErp:
    erp = ScriptedErp()
    hub.adapters["erp"] = erp
    hub.adapters["order360_freshness"] = FreshnessPolicy(
        fresh_within_seconds=0.0,
        refresh_in_background_within_seconds=0.0,
        check_timeout_seconds=0.2,
        recheck_after_failure_seconds=0.0,
    )
    return erp


@pytest.fixture
def client(app: FastAPI, erp: ScriptedErp) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def agent(issue_key: IssueKey) -> dict[str, str]:
    return {"X-API-Key": issue_key("experience:read", name="agent desk")}


@pytest.fixture
def story(hub: Hub) -> OrderStory:
    story = OrderStory()
    with hub.engine.begin() as connection:
        for event in story.all_events():
            apply_event(connection, event)
    return story


def test_the_order_360_is_fresh_while_the_erp_answers(
    client: TestClient, agent: dict[str, str], story: OrderStory, erp: ScriptedErp
) -> None:
    answer = client.get(f"/v1/experience/orders/{story.order.id}", headers=agent)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stale"] is False and body["age_seconds"] < 1
    assert body["erp"]["erp_state"].startswith("processing")
    assert body["status"] == "shipped"  # the ERP's "processing" never takes it back
    assert body["payment"]["status"] == "partially_refunded"
    assert {"order", "lines", "shipments", "returns", "refunds", "open_exceptions", "cases"} <= set(
        body
    )
    assert erp.calls == [story.order.id]


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_the_order_360_answers_stale_while_the_erp_is_down_or_slow(
    client: TestClient, agent: dict[str, str], story: OrderStory, erp: ScriptedErp, mode: str
) -> None:
    url = f"/v1/experience/orders/{story.order.id}"
    assert client.get(url, headers=agent).json()["stale"] is False
    erp.mode = mode
    time.sleep(0.05)
    started = time.perf_counter()
    answer = client.get(url, headers=agent)
    elapsed = time.perf_counter() - started
    body = answer.json()
    assert answer.status_code == 200
    assert body["stale"] is True
    assert body["stale_reason"]
    assert body["age_seconds"] >= 0.05
    assert body["erp"]["status"] == "processing"  # the last confirmed ERP part, kept
    assert elapsed < 1.5  # the check timeout (0.2 s) bounds the wait, not the ERP
    erp.mode = "up"
    # The failure is known, so the next answer is stale at once while a check runs behind it.
    deadline = time.monotonic() + 5
    while client.get(url, headers=agent).json()["stale"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get(url, headers=agent).json()["stale"] is False


def test_an_order_the_erp_does_not_have_yet_is_answered_fresh_from_events(
    client: TestClient, agent: dict[str, str], story: OrderStory, erp: ScriptedErp
) -> None:
    erp.mode = "unknown"
    body = client.get(f"/v1/experience/orders/{story.order.id}", headers=agent).json()
    assert body["stale"] is False and body["erp"] is None


def test_an_order_only_the_erp_knows_is_answered_from_the_erp(
    client: TestClient, agent: dict[str, str]
) -> None:
    order_id = new_id(EntityKind.ORDER)
    body = client.get(f"/v1/experience/orders/{order_id}", headers=agent).json()
    assert body["stale"] is False and body["erp"]["status"] == "processing"
    assert body["status"] == "processing" and body["lines"] == []


def test_an_order_nobody_knows_is_a_404_problem(
    client: TestClient, agent: dict[str, str], erp: ScriptedErp
) -> None:
    erp.mode = "unknown"
    answer = client.get(f"/v1/experience/orders/{new_id(EntityKind.ORDER)}", headers=agent)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/unknown-order")


def test_return_eligibility_follows_the_return_policy(
    client: TestClient, agent: dict[str, str], story: OrderStory
) -> None:
    base = f"/v1/experience/orders/{story.order.id}/lines"
    tshirt = client.get(f"{base}/1/return-eligibility", headers=agent).json()
    assert tshirt["eligible"] is True
    assert (tshirt["ordered_quantity"], tshirt["returned_quantity"]) == (2, 1)
    assert tshirt["returnable_quantity"] == 1
    too_many = client.get(f"{base}/1/return-eligibility?quantity=2", headers=agent).json()
    assert too_many["eligible"] is False
    assert any(reason.startswith("quantity:") for reason in too_many["reasons"])
    missing = client.get(f"{base}/9/return-eligibility", headers=agent)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/unknown-line")


def test_the_return_window_closes(hub: Hub, client: TestClient, agent: dict[str, str]) -> None:
    import datetime as dt

    from views_support import make_order

    from retailsync.domain.catalogue import OrderCreated, build_event

    old = make_order(placed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=45))
    with hub.engine.begin() as connection:
        apply_event(connection, build_event(OrderCreated(order=old), source="test/shop"))
    body = client.get(
        f"/v1/experience/orders/{old.id}/lines/2/return-eligibility", headers=agent
    ).json()
    assert body["eligible"] is False
    assert body["reasons"][0].startswith("return_window:")


def test_concurrent_requests_share_one_erp_check(
    app: FastAPI, hub: Hub, agent: dict[str, str], story: OrderStory, erp: ScriptedErp
) -> None:
    from retailsync.api.experience import order_360_service

    erp.mode, erp.delay = "slow", 0.1
    hub.adapters["order360_freshness"] = FreshnessPolicy(check_timeout_seconds=1.0)
    app.state.order360 = None
    service = order_360_service(app)

    async def many() -> list[bool]:
        views = await asyncio.gather(*(service.answer(story.order.id) for _ in range(20)))
        return [view.stale for view in views]

    assert asyncio.run(many()) == [False] * 20
    assert len(erp.calls) == 1


def test_a_recently_confirmed_order_is_answered_at_once_and_refreshed_behind(
    app: FastAPI, hub: Hub, agent: dict[str, str], story: OrderStory, erp: ScriptedErp
) -> None:
    hub.adapters["order360_freshness"] = FreshnessPolicy(
        fresh_within_seconds=0.0, refresh_in_background_within_seconds=60.0
    )
    url = f"/v1/experience/orders/{story.order.id}"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(url, headers=agent).json()["stale"] is False  # waits: never confirmed
        erp.mode, erp.delay = "slow", 1.0
        started = time.perf_counter()
        body = client.get(url, headers=agent).json()
        assert time.perf_counter() - started < 0.5  # the slow ERP is not waited for
        assert body["stale"] is False and body["age_seconds"] < 5
        deadline = time.monotonic() + 5
        while len(erp.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(erp.calls) == 2  # the background refresh asked the ERP


def test_only_the_first_requests_wait_for_a_slow_check(
    app: FastAPI, hub: Hub, agent: dict[str, str], story: OrderStory, erp: ScriptedErp
) -> None:
    """While the ERP is slow to confirm an order, a request that joins the check after its
    waiting window is answered at once (stale), not after another full wait."""
    from retailsync.api.experience import order_360_service

    erp.mode, erp.delay = "slow", 2.0
    hub.adapters["order360_freshness"] = FreshnessPolicy(check_timeout_seconds=0.3)
    app.state.order360 = None
    service = order_360_service(app)

    async def timed() -> tuple[float, bool]:
        started = time.perf_counter()
        view = await service.answer(story.order.id)
        return time.perf_counter() - started, view.stale

    async def scenario() -> list[tuple[float, bool]]:
        first = await timed()  # starts the check and waits out its window
        await asyncio.sleep(0.1)
        late = await timed()  # the same check is still under way
        return [first, late]

    (first_wait, first_stale), (late_wait, late_stale) = asyncio.run(scenario())
    assert first_stale and late_stale
    assert 0.25 <= first_wait < 1.0
    assert late_wait < 0.1
    assert len(erp.calls) == 1
