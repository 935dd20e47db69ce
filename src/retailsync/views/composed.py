"""The last composed order 360 of each order, reused while nothing it was built from changed.

Composing an order 360 validates every part (shipments, returns, refunds, postings, money)
into the view models: about a millisecond of CPU, on every request, for an answer that only
changes when an event or an ERP check changes the read model. An agent's screen asks for the
same order again and again, so :class:`ComposedViews` keeps, per order, the answer's JSON,
keyed by *everything* the composition read: the read model's rows (compared by value, so a
change written by any process is seen on the next request) and the freshness the service
determined, including the ERP snapshot object itself. Only ``age_seconds`` depends on the
clock: it is set per answer.

The cache holds no state of its own that could go stale: a hit means the inputs are equal, so
the output is the same. It is bounded (oldest entries leave first): an entry is the JSON and
the rows it was built from, ~15 KB for an order with a shipment, a return, a refund and a case,
so the default 2,048 orders hold ~30 MB at most. :meth:`ComposedViews.view` (the
return-eligibility route, the console) parses the JSON back into the view model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retailsync.views.models import ErpOrderSnapshot, Order360View
from retailsync.views.read import Freshness, Order360Rows, age_seconds, compose_order_360

__all__ = ["ComposedViews"]

DEFAULT_CAPACITY = 2048


@dataclass(frozen=True)
class _Composed:
    rows: tuple[Any, ...]
    freshness: tuple[Any, ...]
    snapshot: ErpOrderSnapshot | None
    body_without_age: bytes


def _rows_key(rows: Order360Rows) -> tuple[Any, ...]:
    return (rows.order, tuple(rows.parts), tuple(rows.exceptions))


def _freshness_key(freshness: Freshness) -> tuple[Any, ...]:
    return (
        freshness.stale,
        freshness.as_of,
        freshness.reason,
        freshness.checked_at,
    )


class ComposedViews:
    """Per order, the view composed from the last rows and freshness seen, and its JSON."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a composed-view cache needs room for at least one order")
        self.capacity = capacity
        self._by_order: dict[str, _Composed] = {}
        self.hits = 0
        self.misses = 0

    def _entry(self, rows: Order360Rows, freshness: Freshness, now: datetime) -> _Composed:
        rows_key, freshness_key = _rows_key(rows), _freshness_key(freshness)
        known = self._by_order.get(rows.order_id)
        # The snapshot is compared by identity: the same (immutable) object means the same
        # content, and holding it in the entry keeps its identity from being reused.
        if (
            known is not None
            and known.snapshot is freshness.snapshot
            and known.freshness == freshness_key
            and known.rows == rows_key
        ):
            self.hits += 1
            return known
        self.misses += 1
        view = compose_order_360(rows, freshness, now=now)
        body = view.model_dump_json(by_alias=True, exclude={"age_seconds"}).encode()
        entry = _Composed(rows_key, freshness_key, freshness.snapshot, body)
        self._by_order.pop(rows.order_id, None)
        if len(self._by_order) >= self.capacity:
            del self._by_order[next(iter(self._by_order))]
        self._by_order[rows.order_id] = entry
        return entry

    def json(self, rows: Order360Rows, freshness: Freshness, now: datetime) -> bytes:
        """The order 360 for these rows and freshness as the API sends it, ``age_seconds``
        (first) as of ``now``."""
        entry = self._entry(rows, freshness, now)
        age = json.dumps(age_seconds(freshness.as_of, now)).encode()
        return b'{"age_seconds":' + age + b"," + entry.body_without_age[1:]

    def view(self, rows: Order360Rows, freshness: Freshness, now: datetime) -> Order360View:
        """The same answer as the view model (parsed from the JSON: a copy of its own)."""
        return Order360View.model_validate_json(self.json(rows, freshness, now))

    def forget(self, order_id: str) -> None:
        self._by_order.pop(order_id, None)
