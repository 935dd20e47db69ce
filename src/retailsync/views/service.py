"""The order 360 with a freshness check: the read model answers, the ERP confirms when it can.

:class:`Order360Service` reads the read model and keeps the ERP-owned part (status, shipments
as the ERP plans them, invoices and credit notes, whether the order can still be cancelled)
confirmed through the resilience guard, on the agent lane. What was confirmed within
``fresh_within_seconds`` is answered as is; a little older, it is answered at once while a
check refreshes it in the background; never confirmed or much older, the request waits for the
check (``check_timeout_seconds`` at most). A confirmed answer is written back to the read
model. When the ERP is slow, down or its circuit is open the answer comes from the read model
with ``stale: true``, the reason, ``as_of`` and ``age_seconds``. Requests for the same order
share one check, and after a failed check an order is checked again only every
``recheck_after_failure_seconds``, so an ERP outage costs an agent nothing but the flag.
When the ERP port can read many orders at once (the Tryton adapter can), the checks that start
within a few milliseconds of each other are sent as one read
(:class:`~retailsync.views.order_checks.BatchedOrderReads`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from retailsync.db import run_read
from retailsync.ports.erp import ErpOrderBatchReads, ErpOrderState, ErpPort
from retailsync.resilience.config import Lane
from retailsync.resilience.errors import BusinessError, TransientError, UnknownReference
from retailsync.resilience.guard import Downstream, ReadResult, StaleValue
from retailsync.resilience.lanes import using_lane
from retailsync.views.composed import ComposedViews
from retailsync.views.errors import OrderNotInReadModel
from retailsync.views.models import ErpOrderSnapshot, Order360View
from retailsync.views.order_checks import BatchedOrderReads
from retailsync.views.read import (
    Freshness,
    Order360Rows,
    load_order_360_rows,
    recorded_freshness,
)
from retailsync.views.tables import views_orders

__all__ = ["FreshnessPolicy", "Order360Service", "guarded_read", "snapshot_of"]

T = TypeVar("T")

_MAX_TRACKED_ORDERS = 10_000


@dataclass(frozen=True)
class FreshnessPolicy:
    """How current the ERP-owned part must be, and how long an agent waits to confirm it.

    Confirmed within ``fresh_within_seconds``: answered as is. Older, but within
    ``refresh_in_background_within_seconds``: answered at once (with its age) while a check
    runs in the background. Older still, or never confirmed: the request waits for the check,
    ``check_timeout_seconds`` at most (answering ``stale`` after that while the check goes on,
    up to ``erp_timeout_seconds``). After a failed check the answer is ``stale`` at once and
    the order is checked again (in the background) every ``recheck_after_failure_seconds``.
    """

    fresh_within_seconds: float = 5.0
    refresh_in_background_within_seconds: float = 60.0
    check_timeout_seconds: float = 0.5
    erp_timeout_seconds: float = 5.0
    recheck_after_failure_seconds: float = 5.0


def snapshot_of(state: ErpOrderState) -> ErpOrderSnapshot:
    """The part of an ERP order state the read model keeps."""
    return ErpOrderSnapshot(
        status=state.status,
        erp_state=state.erp_state,
        total=state.total,
        cancellable=state.cancellable,
        shipments=list(state.shipments),
        postings=list(state.postings),
    )


def port_is_guarded(port: Any, downstream: Downstream) -> bool:
    """True when ``port`` already passes each of its calls through ``downstream``."""
    return getattr(getattr(port, "client", None), "guard", None) is downstream


async def guarded_read(
    downstream: Downstream,
    port: Any,
    operation: str,
    fn: Callable[[], Awaitable[T]],
    *,
    stale: Callable[[], StaleValue[T] | None],
) -> ReadResult[T]:
    """An agent-lane read through the ERP's guard, served ``stale()`` while the ERP fails.

    A port whose client is already guarded (every request through the same breaker, lanes and
    rate limit) runs in the agent lane as is: guarding the whole read again would take a
    second bulkhead slot and rate token per request.
    """
    if not port_is_guarded(port, downstream):
        return await downstream.read(operation, fn, stale=stale, lane=Lane.AGENT)
    try:
        with using_lane(Lane.AGENT):
            value = await fn()
    except TransientError as exc:
        cached = stale()
        if cached is None:
            raise
        age = max(0.0, (datetime.now(UTC) - cached.as_of).total_seconds())
        return ReadResult(cached.value, True, cached.as_of, age, reason=str(exc))
    return ReadResult(value, stale=False, as_of=datetime.now(UTC), age_seconds=0.0)


@dataclass(frozen=True)
class _Check:
    snapshot: ErpOrderSnapshot | None
    checked_at: datetime | None
    failure: str | None = None
    not_in_erp: bool = False


def _is_not_found(exc: BusinessError) -> bool:
    # The ERP connector's ErpNotFound (views must not import connectors) or the generic kind.
    return isinstance(exc, UnknownReference) or type(exc).__name__ == "ErpNotFound"


class Order360Service:
    """Answers order 360 requests: read model first, ERP freshness check when due."""

    def __init__(
        self,
        engine: Engine,
        *,
        erp: ErpPort | None = None,
        downstream: Downstream | None = None,
        policy: FreshnessPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if erp is not None and downstream is None:
            raise ValueError("an ERP port needs its resilience guard (hub.downstreams.erp)")
        self.engine = engine
        self.erp = erp
        self.downstream = downstream
        self.policy = policy or FreshnessPolicy()
        self._clock = clock
        self._checks: dict[str, asyncio.Task[_Check]] = {}
        self._check_started: dict[str, float] = {}
        self._failed_until: dict[str, float] = {}
        self._composed = ComposedViews()
        self._writing = asyncio.Lock()
        # A guarded port that reads many orders at once gets the checks grouped (one request
        # and one rate-limit token for all the checks that start within a few milliseconds).
        self._grouped = (
            BatchedOrderReads(erp)
            if isinstance(erp, ErpOrderBatchReads)
            and downstream is not None
            and port_is_guarded(erp, downstream)
            else None
        )

    # --- reading --------------------------------------------------------------------------

    def _load(self, order_id: str) -> Order360Rows | None:
        with self.engine.connect() as connection:
            return load_order_360_rows(connection, order_id)

    async def rows(self, order_id: str) -> Order360Rows | None:
        return await run_read(self.engine, self._load, order_id)

    async def answer(self, order_id: str) -> Order360View:
        """The order 360 of ``order_id``; :class:`OrderNotInReadModel` when nobody knows it."""
        rows, freshness = await self._rows_and_freshness(order_id)
        return self._composed.view(rows, freshness, self._clock())

    async def answer_json(self, order_id: str) -> bytes:
        """:meth:`answer` serialized as the API sends it (from the composed-view cache)."""
        rows, freshness = await self._rows_and_freshness(order_id)
        return self._composed.json(rows, freshness, self._clock())

    async def _rows_and_freshness(self, order_id: str) -> tuple[Order360Rows, Freshness]:
        rows = await self.rows(order_id)
        freshness = await self.freshness(order_id, rows)
        if rows is None:
            rows = await self.rows(order_id)  # the ERP check just recorded the order
            if rows is None:
                raise OrderNotInReadModel(order_id)
        return rows, freshness

    async def freshness(self, order_id: str, rows: Order360Rows | None) -> Freshness:
        """Confirm the ERP-owned part when due; say how fresh the answer is."""
        now = self._clock()
        if self.erp is None:
            if rows is None:
                raise OrderNotInReadModel(order_id)
            return Freshness(False, rows.updated_at, snapshot=rows.erp_snapshot)
        policy = self.policy
        if rows is not None:
            checked = rows.erp_checked_at
            age = (now - checked).total_seconds() if checked is not None else math.inf
            recorded = recorded_freshness(rows)
            failing = recorded.stale or time.monotonic() < self._failed_until.get(order_id, 0.0)
            if failing or age > policy.fresh_within_seconds:
                if failing or age <= policy.refresh_in_background_within_seconds:
                    self._refresh_in_background(order_id, rows)
                    return Freshness(
                        failing,
                        recorded.as_of,
                        (recorded.reason or "the ERP could not be reached a moment ago")
                        if failing
                        else None,
                        recorded.snapshot,
                        checked,
                    )
            else:
                return Freshness(False, recorded.as_of, None, recorded.snapshot, checked)
        check = await self._shared_check(order_id, rows)
        if check.failure is None:
            if check.not_in_erp and rows is None:
                raise OrderNotInReadModel(order_id)
            at = check.checked_at or now
            return Freshness(False, at, snapshot=check.snapshot, checked_at=check.checked_at)
        if rows is None:
            raise OrderNotInReadModel(order_id)
        checked = rows.erp_checked_at
        return Freshness(
            True, checked or rows.updated_at, check.failure, rows.erp_snapshot, checked
        )

    def _refresh_in_background(self, order_id: str, rows: Order360Rows) -> None:
        """Start a check (unless one runs or the last failure is too recent); do not wait."""
        if order_id in self._checks or time.monotonic() < self._failed_until.get(order_id, 0.0):
            return
        self._start_check(order_id, rows)

    # --- checking with the ERP ------------------------------------------------------------

    def _start_check(self, order_id: str, rows: Order360Rows | None) -> asyncio.Task[_Check]:
        task = asyncio.create_task(self._check(order_id, rows))
        self._checks[order_id] = task
        self._check_started[order_id] = time.monotonic()

        def forget(_task: asyncio.Task[_Check]) -> None:
            self._checks.pop(order_id, None)
            self._check_started.pop(order_id, None)

        task.add_done_callback(forget)
        return task

    async def _shared_check(self, order_id: str, rows: Order360Rows | None) -> _Check:
        """Wait for the order's check until ``check_timeout_seconds`` after it started.

        Requests that join a check late wait only for what is left of that window, so while the
        ERP is slow (or its rate limit spaces the checks out) one request per order waits, not
        every one; the check goes on in the background either way.
        """
        task = self._checks.get(order_id) or self._start_check(order_id, rows)
        started = self._check_started.get(order_id, time.monotonic())
        waited = self.policy.check_timeout_seconds
        left = waited - (time.monotonic() - started)
        try:
            if task.done():
                return task.result()
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                return await asyncio.shield(task)
        except TimeoutError:
            return _Check(
                rows.erp_snapshot if rows is not None else None,
                rows.erp_checked_at if rows is not None else None,
                failure=f"the ERP did not confirm the order within {waited:g}s",
            )

    async def _check(self, order_id: str, rows: Order360Rows | None) -> _Check:
        assert self.erp is not None and self.downstream is not None
        erp = self.erp
        snapshot = rows.erp_snapshot if rows is not None else None
        checked = rows.erp_checked_at if rows is not None else None

        def stale() -> StaleValue[ErpOrderState | None] | None:
            if checked is None:
                return None
            return StaleValue(None, checked)

        grouped = self._grouped

        async def fetch() -> ErpOrderState | None:
            if grouped is not None:
                return await grouped.get_order(order_id)
            return await erp.get_order(order_id)

        try:
            async with asyncio.timeout(self.policy.erp_timeout_seconds):
                result = await guarded_read(self.downstream, erp, "get_order", fetch, stale=stale)
        except TimeoutError:
            failure = f"the ERP did not answer within {self.policy.erp_timeout_seconds:g}s"
            return await self._failed(order_id, failure, snapshot, checked)
        except TransientError as exc:
            return await self._failed(order_id, f"the ERP is unavailable: {exc}", snapshot, checked)
        except BusinessError as exc:
            if _is_not_found(exc):
                now = self._clock()
                await self._record(self._record_checked, order_id, None, now)
                return _Check(None, now, not_in_erp=True)
            return await self._failed(
                order_id, f"the ERP refused the read: {exc}", snapshot, checked
            )
        if result.stale or result.value is None:
            reason = f"the ERP is unavailable: {result.reason or 'no answer'}"
            return await self._failed(order_id, reason, snapshot, checked)
        fresh = snapshot_of(result.value)
        now = self._clock()
        await self._record(self._record_checked, order_id, fresh, now)
        self._failed_until.pop(order_id, None)
        return _Check(fresh, now)

    async def _failed(
        self,
        order_id: str,
        failure: str,
        snapshot: ErpOrderSnapshot | None,
        checked: datetime | None,
    ) -> _Check:
        if len(self._failed_until) > _MAX_TRACKED_ORDERS:
            self._failed_until.clear()
        self._failed_until[order_id] = time.monotonic() + self.policy.recheck_after_failure_seconds
        await self._record(self._record_failed, order_id, failure, self._clock())
        return _Check(snapshot, checked, failure=failure)

    # --- recording in the read model ------------------------------------------------------

    async def _record(self, write: Callable[..., None], *args: Any) -> None:
        """One check's result written in a worker thread, one write at a time.

        Grouped checks finish together; their writes wait for the database's writer one after
        another anyway, and a crowd of threads contending for the interpreter lock stalls the
        event loop that answers the agents.
        """
        async with self._writing:
            await anyio.to_thread.run_sync(write, *args)

    def _record_checked(
        self, order_id: str, snapshot: ErpOrderSnapshot | None, at: datetime
    ) -> None:
        values = {
            "erp_snapshot": snapshot.model_dump_json() if snapshot is not None else None,
            "erp_checked_at": at,
        }
        self._upsert(order_id, values, insert_when_missing=snapshot is not None, at=at)

    def _record_failed(self, order_id: str, failure: str, at: datetime) -> None:
        values = {"erp_failed_at": at, "erp_failure": failure[:2000]}
        self._upsert(order_id, values, insert_when_missing=False, at=at)

    def _upsert(
        self,
        order_id: str,
        values: Mapping[str, object],
        *,
        insert_when_missing: bool,
        at: datetime,
    ) -> None:
        t = views_orders
        for _attempt in range(2):
            with self.engine.begin() as connection:
                updated = connection.execute(
                    t.update().where(t.c.order_id == order_id).values(**values)
                ).rowcount
                if updated or not insert_when_missing:
                    return
                try:
                    with connection.begin_nested():
                        connection.execute(
                            t.insert().values(order_id=order_id, updated_at=at, **values)
                        )
                    return
                except IntegrityError:
                    continue  # an event created the row meanwhile: update it instead
        raise RuntimeError(
            f"could not record the ERP check of order {order_id}"
        )  # pragma: no cover

    def forget(self, order_id: str) -> None:
        """Drop what this process remembers about ``order_id`` (tests, manual refresh)."""
        self._failed_until.pop(order_id, None)
        self._composed.forget(order_id)
