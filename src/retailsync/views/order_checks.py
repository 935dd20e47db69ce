"""Freshness checks of many orders grouped into one ERP read.

Every order an agent looks at is confirmed with the ERP every few seconds. One read per order
spends one token of the ERP's rate limit each (20 a second by default), so a service desk
watching a hundred orders would exhaust it and see stale answers while the ERP is up.
:class:`BatchedOrderReads` collects the checks that start within ``window`` seconds (at most
``max_orders``) and reads them with one :meth:`~retailsync.ports.erp.ErpOrderBatchReads.get_orders`
call; each check still gets its own answer or error:

- an order the ERP does not have raises :class:`~retailsync.resilience.errors.UnknownReference`
  for that check only;
- a transient failure (ERP down, circuit open, timeout) fails every check of the group, as the
  same failure would have failed each of them alone;
- any other failure of the grouped read (one order the ERP refuses to read spoils the request
  for all) is retried order by order, so one bad order cannot make the others stale.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from retailsync.ports.erp import ErpOrderBatchReads, ErpOrderState
from retailsync.resilience.config import Lane
from retailsync.resilience.errors import BusinessError, TransientError, UnknownReference
from retailsync.resilience.lanes import using_lane

__all__ = ["BatchedOrderReads"]

DEFAULT_WINDOW_SECONDS = 0.01
DEFAULT_MAX_ORDERS = 50


class BatchedOrderReads:
    """``get_order`` for the order 360's checks, grouped into ``get_orders`` calls."""

    def __init__(
        self,
        port: ErpOrderBatchReads,
        *,
        window: float = DEFAULT_WINDOW_SECONDS,
        max_orders: int = DEFAULT_MAX_ORDERS,
    ) -> None:
        if max_orders < 1:
            raise ValueError("a group of order reads needs room for at least one order")
        self.port = port
        self.window = window
        self.max_orders = max_orders
        self._waiting: dict[str, list[asyncio.Future[ErpOrderState]]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._reads: set[asyncio.Task[None]] = set()
        self.requests = 0
        """Grouped reads sent (for monitoring and tests)."""

    async def get_order(self, order_id: str) -> ErpOrderState:
        """The ERP's state of ``order_id``, read together with the checks that start now."""
        future: asyncio.Future[ErpOrderState] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(order_id, []).append(future)
        if len(self._waiting) >= self.max_orders:
            self._send()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.window, self._send)
        return await future

    def _send(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            task = asyncio.create_task(self._read(waiting))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    async def _read(self, waiting: dict[str, list[asyncio.Future[ErpOrderState]]]) -> None:
        order_ids = list(waiting)
        try:
            with using_lane(Lane.AGENT):
                self.requests += 1
                states = await self.port.get_orders(order_ids)
        except TransientError as exc:
            for futures in waiting.values():
                _settle(futures, error=exc)
            return
        except BusinessError:
            await self._read_one_by_one(waiting)
            return
        except asyncio.CancelledError:
            for futures in waiting.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as exc:  # anything else: every check hears of it
            for futures in waiting.values():
                _settle(futures, error=exc)
            return
        for order_id, futures in waiting.items():
            _answer(futures, order_id, states)

    async def _read_one_by_one(
        self, waiting: dict[str, list[asyncio.Future[ErpOrderState]]]
    ) -> None:
        for order_id, futures in waiting.items():
            try:
                with using_lane(Lane.AGENT):
                    self.requests += 1
                    states = await self.port.get_orders([order_id])
            except Exception as exc:
                _settle(futures, error=exc)
                continue
            _answer(futures, order_id, states)

    async def aclose(self) -> None:
        """Wait for the reads under way (their checks are answered either way)."""
        self._send()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._reads, return_exceptions=True)


def _not_in_erp(order_id: str) -> UnknownReference:
    return UnknownReference(
        f"the ERP has no sale for order {order_id}", downstream="erp", operation="get_orders"
    )


def _answer(
    futures: Sequence[asyncio.Future[ErpOrderState]],
    order_id: str,
    states: dict[str, ErpOrderState],
) -> None:
    """Answer the checks of ``order_id`` from a read's ``states`` (absent: not in the ERP)."""
    state = states.get(order_id)
    if state is None:
        _settle(futures, error=_not_in_erp(order_id))
    else:
        _settle(futures, state=state)


def _settle(
    futures: Sequence[asyncio.Future[ErpOrderState]],
    *,
    state: ErpOrderState | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer every check waiting for one order; a check that gave up (timed out) is skipped."""
    for future in futures:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            assert state is not None
            future.set_result(state)
