from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

from retailsync.reconcile.records import StockFigure
from retailsync.reconcile.sources import csv_level_source, csv_stock_source, sorted_by_key


async def _shuffled(n: int) -> AsyncIterator[list[StockFigure]]:
    figures = [StockFigure.of(f"SKU-{i:05d}", "DC1", i) for i in range(n)]
    random.Random(3).shuffle(figures)
    for start in range(0, n, 37):
        yield figures[start : start + 37]


async def test_external_sort_spills_runs_and_merges_them_in_key_order() -> None:
    seen: list[StockFigure] = []
    async for page in sorted_by_key(_shuffled(1000), run_size=100, page_size=64):
        assert len(page) <= 64
        seen.extend(page)
    assert [f.key for f in seen] == sorted(f.key for f in seen)
    assert [f.on_hand for f in seen] == list(range(1000))


async def test_csv_sources_read_pages_including_quoted_and_short_rows(tmp_path: Path) -> None:
    stock = tmp_path / "erp.csv"
    stock.write_text(
        'sku,location,on_hand,reserved,allocated,in_transit\nA,DC1,5,1,,2\n"B",DC1,3\nC,DC1,0,0,0,0\n'
    )
    pages = [page async for page in csv_stock_source(stock, page_size=2)]
    assert [len(p) for p in pages] == [2, 1]
    a, b, c = (f for page in pages for f in page)
    assert c.key == "C@DC1"
    assert (a.key, a.on_hand, a.reserved, a.allocated, a.in_transit) == ("A@DC1", 5, 1, 0, 2)
    assert (b.key, b.on_hand) == ("B@DC1", 3)
    levels = tmp_path / "levels.csv"
    levels.write_text("sku,location,available\nA,DC1,4\n")
    (level,) = [f async for page in csv_level_source(levels) for f in page]
    assert (level.key, level.available) == ("A@DC1", 4)


async def test_tee_pages_reads_the_source_once_for_every_reader() -> None:
    from retailsync.reconcile.sources import tee_pages

    pulled: list[int] = []

    async def source() -> AsyncIterator[list[int]]:
        for n in range(4):
            pulled.append(n)
            yield [n]

    first, second = tee_pages(source())
    assert await anext(first) == [0]
    assert [page async for page in second] == [[0], [1], [2], [3]]
    assert [page async for page in first] == [[1], [2], [3]]
    assert pulled == [0, 1, 2, 3]


def test_schedule_names_only_known_jobs_with_positive_intervals() -> None:
    import pytest
    from pydantic import ValidationError

    from retailsync.reconcile.policy import ReconcilePolicy, ReconcileSchedule

    assert ReconcilePolicy().schedule.intervals == {}
    with pytest.raises(ValidationError, match="use one of inventory, orders, refunds"):
        ReconcileSchedule(intervals={"stock": 60})
    with pytest.raises(ValidationError, match="positive number of seconds"):
        ReconcileSchedule(intervals={"orders": 0})
