"""Reconciliation sources: async iterables of sorted pages of figures.

``csv_stock_source`` / ``csv_level_source`` read CSV drop files (legacy batch exports, and the
benchmark); ``sorted_by_key`` puts any unsorted record stream in key order with bounded memory
(sorted runs spilled to temporary files, then merged); the ``*_from_*`` adapters page through
the ports (:mod:`retailsync.ports`) and map each system's records to figures.
"""

from __future__ import annotations

import asyncio
import csv
import heapq
import pickle
import tempfile
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from retailsync.domain.orders import Order, OrderStatus
from retailsync.ports.commerce import CommercePort, StorefrontOrder
from retailsync.ports.erp import ErpPort
from retailsync.ports.payments import PaymentsPort, RefundStatus
from retailsync.ports.warehouse import WarehousePort
from retailsync.reconcile.records import (
    Keyed,
    OrderFigure,
    PublishedLevel,
    RefundFigure,
    StockFigure,
)

__all__ = [
    "csv_level_source",
    "csv_stock_source",
    "erp_orders_source",
    "erp_stock_source",
    "payment_refunds_source",
    "sorted_by_key",
    "storefront_orders_source",
    "tee_pages",
    "wms_stock_source",
]

R = TypeVar("R", bound=Keyed)


# ---- CSV files ------------------------------------------------------------------------------


def _int(value: str) -> int:
    return int(value) if value else 0


def _rows(handle: IO[str]) -> Iterator[list[str]]:
    """CSV rows; plain lines are split directly (much faster), quoted ones go through csv."""
    next(handle, None)
    for line in handle:
        if '"' in line:
            yield next(csv.reader([line]))
        else:
            yield line.rstrip("\r\n").split(",")


def _stock_pages(path: Path, page_size: int) -> Iterator[list[StockFigure]]:
    with path.open(newline="", encoding="utf-8") as handle:
        page: list[StockFigure] = []
        for row in _rows(handle):
            if len(row) >= 6:
                sku, location, on_hand, reserved, allocated, in_transit = row[:6]
                try:
                    figure = StockFigure(
                        f"{sku}@{location}",
                        sku,
                        location,
                        int(on_hand),
                        int(reserved),
                        int(allocated),
                        int(in_transit),
                    )
                except ValueError:  # an empty optional column
                    figure = StockFigure(
                        f"{sku}@{location}",
                        sku,
                        location,
                        int(on_hand),
                        _int(reserved),
                        _int(allocated),
                        _int(in_transit),
                    )
            else:
                figure = StockFigure(f"{row[0]}@{row[1]}", row[0], row[1], int(row[2]))
            page.append(figure)
            if len(page) >= page_size:
                yield page
                page = []
        if page:
            yield page


def _level_pages(path: Path, page_size: int) -> Iterator[list[PublishedLevel]]:
    with path.open(newline="", encoding="utf-8") as handle:
        page: list[PublishedLevel] = []
        for row in _rows(handle):
            sku, location = row[0], row[1]
            page.append(PublishedLevel(f"{sku}@{location}", sku, location, int(row[2])))
            if len(page) >= page_size:
                yield page
                page = []
        if page:
            yield page


async def _pages(pages: Iterator[list[R]]) -> AsyncIterator[list[R]]:
    # A page of a local file parses in milliseconds: reading it on the event loop is cheaper
    # than a thread hop per page (measured), and a batch job shares the loop with nothing.
    for page in pages:
        yield page


def csv_stock_source(
    path: str | Path, *, page_size: int = 5000
) -> AsyncIterator[list[StockFigure]]:
    """``sku,location,on_hand[,reserved,allocated,in_transit]`` rows (header first), sorted."""
    return _pages(_stock_pages(Path(path), page_size))


def csv_level_source(
    path: str | Path, *, page_size: int = 5000
) -> AsyncIterator[list[PublishedLevel]]:
    """``sku,location,available`` rows (header first), sorted by ``sku@location``."""
    return _pages(_level_pages(Path(path), page_size))


# ---- external sort --------------------------------------------------------------------------


def _spill(records: list[R]) -> IO[bytes]:
    records.sort(key=lambda record: record.key)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by sorted_by_key
    pickler = pickle.Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL)
    for start in range(0, len(records), 1000):
        pickler.dump(records[start : start + 1000])
    handle.seek(0)
    return handle


def _read_run(handle: IO[bytes]) -> Iterator[Any]:
    unpickler = pickle.Unpickler(handle)
    while True:
        try:
            chunk = unpickler.load()
        except EOFError:
            return
        yield from chunk


async def sorted_by_key(
    records: AsyncIterable[Sequence[R]], *, run_size: int = 50_000, page_size: int = 1000
) -> AsyncIterator[list[R]]:
    """The same records as sorted pages; holds at most ``run_size`` records in memory.

    For systems whose API cannot sort by our key: sorted runs go to temporary files, which
    are then merged (one small buffer per run).
    """
    runs: list[IO[bytes]] = []
    buffer: list[R] = []
    try:
        async for page in records:
            buffer.extend(page)
            if len(buffer) >= run_size:
                runs.append(_spill(buffer))
                buffer = []
        if not runs:
            buffer.sort(key=lambda record: record.key)
            for start in range(0, len(buffer), page_size):
                yield buffer[start : start + page_size]
            return
        if buffer:
            runs.append(_spill(buffer))
            buffer = []
        out: list[R] = []
        for record in heapq.merge(*(_read_run(run) for run in runs), key=lambda r: r.key):
            out.append(record)
            if len(out) >= page_size:
                yield out
                out = []
        if out:
            yield out
    finally:
        for run in runs:
            run.close()


# ---- tee ------------------------------------------------------------------------------------


def tee_pages(
    pages: AsyncIterable[Sequence[R]], n: int = 2
) -> tuple[AsyncIterator[Sequence[R]], ...]:
    """``n`` independent iterators over the same pages, reading ``pages`` once.

    For a source whose keys another source looks up (the ERP reads the sales of the
    storefront's orders): the merge consumes both in key order, so the buffer between the
    fastest and the slowest reader stays a page or two.
    """
    source = aiter(pages)
    buffers: list[deque[Sequence[R]]] = [deque() for _ in range(n)]
    lock = asyncio.Lock()
    state = {"done": False}

    async def reader(mine: deque[Sequence[R]]) -> AsyncIterator[Sequence[R]]:
        while True:
            if not mine:
                async with lock:
                    if not mine and not state["done"]:
                        try:
                            page = await anext(source)
                        except StopAsyncIteration:
                            state["done"] = True
                        else:
                            for buffer in buffers:
                                buffer.append(page)
            if mine:
                yield mine.popleft()
            elif state["done"]:
                return

    return tuple(reader(buffer) for buffer in buffers)


# ---- ports ----------------------------------------------------------------------------------


async def wms_stock_source(
    warehouse: WarehousePort, *, run_size: int = 50_000
) -> AsyncIterator[list[StockFigure]]:
    """The warehouse's on-hand and allocated units per SKU and location, sorted by key."""

    async def pages() -> AsyncIterator[list[StockFigure]]:
        page: list[StockFigure] = []
        async for position in warehouse.iter_positions():
            page.append(
                StockFigure.of(
                    position.sku,
                    position.location,
                    position.on_hand,
                    allocated=position.allocated,
                )
            )
            if len(page) >= 500:
                yield page
                page = []
        if page:
            yield page

    async for page in sorted_by_key(pages(), run_size=run_size):
        yield page


async def erp_stock_source(
    erp: ErpPort, keys: AsyncIterable[Sequence[Keyed]], *, page_size: int = 200
) -> AsyncIterator[list[StockFigure]]:
    """The ERP's stock for each ``SKU@LOCATION`` of ``keys`` (sorted), read one by one.

    The ERP port answers per SKU and location; ``keys`` is the sorted key stream of the
    positions to compare (typically the warehouse's and the storefront's keys merged).
    """
    page: list[StockFigure] = []
    async for key_page in keys:
        for keyed in key_page:
            sku, _, location = keyed.key.partition("@")
            position = await erp.get_stock(sku, location)
            page.append(
                StockFigure.of(
                    sku,
                    location,
                    position.on_hand,
                    reserved=position.reserved,
                    in_transit=position.in_transit,
                )
            )
            if len(page) >= page_size:
                yield page
                page = []
    if page:
        yield page


StorefrontStatus = Callable[[StorefrontOrder], OrderStatus | None]
StorefrontOrderMapper = Callable[[StorefrontOrder], Order | None]
CanonicalId = Callable[[str], str]


def default_storefront_status(order: StorefrontOrder) -> OrderStatus | None:
    """A storefront order's status in canonical terms, from its status words."""
    if order.status in {"cancelled", "canceled"}:
        return OrderStatus.CANCELLED
    if order.fulfillment_status in {"fulfilled", "shipped"}:
        return OrderStatus.SHIPPED
    if order.fulfillment_status == "partial":
        return OrderStatus.PARTIALLY_SHIPPED
    if order.financial_status in {"paid", "partially_refunded", "refunded", "authorized"}:
        return OrderStatus.CONFIRMED
    return OrderStatus.PENDING


async def storefront_orders_source(
    commerce: CommercePort,
    *,
    canonical_id: CanonicalId,
    to_order: StorefrontOrderMapper | None = None,
    status_of: StorefrontStatus = default_storefront_status,
    updated_since: datetime | None = None,
    run_size: int = 50_000,
) -> AsyncIterator[list[OrderFigure]]:
    """Storefront orders as figures keyed by canonical order id (``canonical_id(order_ref)``)."""

    async def pages() -> AsyncIterator[list[OrderFigure]]:
        page: list[OrderFigure] = []
        async for order in commerce.iter_orders(updated_since=updated_since):
            page.append(
                OrderFigure(
                    key=canonical_id(order.order_ref),
                    reference=order.name or order.order_ref,
                    status=status_of(order),
                    total=order.total,
                    order=to_order(order) if to_order is not None else None,
                )
            )
            if len(page) >= 250:
                yield page
                page = []
        if page:
            yield page

    async for page in sorted_by_key(pages(), run_size=run_size):
        yield page


def is_not_found(exc: BaseException) -> bool:
    """Whether an adapter error says the record does not exist (``...NotFound``, LookupError)."""
    return isinstance(exc, LookupError) or type(exc).__name__.endswith("NotFound")


async def erp_orders_source(
    erp: ErpPort,
    order_ids: AsyncIterable[Sequence[Keyed]],
    *,
    page_size: int = 100,
    is_missing: Callable[[BaseException], bool] = is_not_found,
) -> AsyncIterator[list[OrderFigure]]:
    """The ERP's state of each canonical order id in ``order_ids`` (sorted); absent ones skipped.

    The ERP port reads one order at a time; ``order_ids`` is the sorted stream of orders to
    look up (the storefront's orders). An order the ERP does not know yields nothing, which
    the classifier reports as missing.
    """
    page: list[OrderFigure] = []
    async for id_page in order_ids:
        for keyed in id_page:
            try:
                state = await erp.get_order(keyed.key)
            except Exception as exc:
                if is_missing(exc):
                    continue
                raise
            page.append(
                OrderFigure(
                    key=keyed.key,
                    reference=state.erp_id,
                    status=state.status,
                    total=state.total,
                )
            )
            if len(page) >= page_size:
                yield page
                page = []
    if page:
        yield page


async def payment_refunds_source(
    payments: PaymentsPort, *, statuses: Sequence[RefundStatus] = (RefundStatus.SUCCEEDED,)
) -> AsyncIterator[list[RefundFigure]]:
    """Refunds paid out at the payment service that carry a canonical refund id, sorted."""

    async def pages() -> AsyncIterator[list[RefundFigure]]:
        records = await payments.list_refunds()
        page = [
            RefundFigure(r.refund_id, r.refund_ref, r.amount, r.created_at)
            for r in records
            if r.refund_id and r.status in statuses
        ]
        yield page

    async for page in sorted_by_key(pages()):
        yield page


def figures_from_mapping(mapping: Mapping[str, R]) -> list[R]:
    """Helper for tests and small sources: records sorted by key."""
    return sorted(mapping.values(), key=lambda record: record.key)
