"""The order 360's freshness checks, grouped into one ERP read when the port can read many
orders at once: one request for many watched orders, each order still answered on its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from views_support import OrderStory, erp_processing

from retailsync.bootstrap import Hub
from retailsync.ports.erp import ErpOrderBatchReads, ErpOrderState
from retailsync.resilience.errors import BusinessError, DownstreamUnavailable
from retailsync.views import FreshnessPolicy, Order360Service, apply_event
from retailsync.views.order_checks import BatchedOrderReads


@dataclass
class GroupingErp:
    """An ERP at the edge of these tests that reads many orders per request, behind the
    hub's ERP guard like the Tryton adapter's client."""

    client: Any
    mode: str = "up"
    unknown: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    requests: list[list[str]] = field(default_factory=list)

    async def get_orders(self, order_ids: list[str]) -> dict[str, ErpOrderState]:
        self.requests.append(list(order_ids))
        await asyncio.sleep(0.01)
        if self.mode == "down":
            raise DownstreamUnavailable("connection refused", downstream="erp")
        if self.refused & set(order_ids):
            raise BusinessError("the ERP refuses to read a record", downstream="erp")
        return {oid: erp_processing(oid) for oid in order_ids if oid not in self.unknown}

    async def get_order(self, order_id: str) -> ErpOrderState:
        raise AssertionError("checks are grouped: get_order is not called")


@pytest.fixture
def orders(hub: Hub) -> list[str]:
    stories = [OrderStory() for _ in range(12)]
    with hub.engine.begin() as connection:
        for story in stories:
            apply_event(connection, story.placed())
    return [story.order.id for story in stories]


@pytest.fixture
def erp(hub: Hub) -> GroupingErp:
    return GroupingErp(client=SimpleNamespace(guard=hub.downstreams.erp))


def _service(hub: Hub, erp: GroupingErp) -> Order360Service:
    return Order360Service(
        hub.engine,
        erp=erp,  # type: ignore[arg-type]  # the port's order reads are all these tests use
        downstream=hub.downstreams.erp,
        policy=FreshnessPolicy(check_timeout_seconds=2.0),
    )


def _answer_all(service: Order360Service, order_ids: list[str]) -> list[tuple[bool, str | None]]:
    async def answer() -> list[tuple[bool, str | None]]:
        views = await asyncio.gather(*(service.answer(oid) for oid in order_ids))
        return [(view.stale, view.erp.status.value if view.erp else None) for view in views]

    return asyncio.run(answer())


def test_checks_that_start_together_are_one_erp_request(
    hub: Hub, erp: GroupingErp, orders: list[str]
) -> None:
    assert isinstance(erp, ErpOrderBatchReads)
    answers = _answer_all(_service(hub, erp), orders)
    assert answers == [(False, "processing")] * len(orders)
    assert erp.requests == [orders]


def test_an_order_the_erp_does_not_have_does_not_spoil_the_others(
    hub: Hub, erp: GroupingErp, orders: list[str]
) -> None:
    erp.unknown = {orders[3]}
    answers = _answer_all(_service(hub, erp), orders)
    # The order the ERP does not have yet is answered from events (fresh, no ERP part).
    assert answers[3] == (False, None)
    assert [a for i, a in enumerate(answers) if i != 3] == [(False, "processing")] * 11
    assert len(erp.requests) == 1


def test_while_the_erp_is_down_every_grouped_answer_is_stale(
    hub: Hub, erp: GroupingErp, orders: list[str]
) -> None:
    erp.mode = "down"
    answers = _answer_all(_service(hub, erp), orders)
    assert [stale for stale, _ in answers] == [True] * len(orders)
    assert len(erp.requests) == 1


def test_a_refused_group_is_read_again_order_by_order(
    hub: Hub, erp: GroupingErp, orders: list[str]
) -> None:
    erp.refused = {orders[5]}
    answers = _answer_all(_service(hub, erp), orders)
    assert answers[5][0] is True  # the refused order is stale, with the ERP's reason
    assert [a for i, a in enumerate(answers) if i != 5] == [(False, "processing")] * 11
    assert erp.requests[0] == orders
    assert sorted(request[0] for request in erp.requests[1:]) == sorted(orders)


def test_groups_are_capped_and_an_abandoned_check_does_not_break_the_group(
    hub: Hub, erp: GroupingErp, orders: list[str]
) -> None:
    reads = BatchedOrderReads(erp, window=0.05, max_orders=5)

    async def scenario() -> list[str]:
        abandoned = asyncio.create_task(reads.get_order(orders[0]))
        others = [asyncio.create_task(reads.get_order(oid)) for oid in orders[1:]]
        await asyncio.sleep(0)
        abandoned.cancel()
        states = await asyncio.gather(*others)
        await reads.aclose()
        return [state.order_id for state in states]

    assert asyncio.run(scenario()) == orders[1:]
    assert [len(request) for request in erp.requests] == [5, 5, 2]
    with pytest.raises(ValueError, match="at least one"):
        BatchedOrderReads(erp, max_orders=0)
