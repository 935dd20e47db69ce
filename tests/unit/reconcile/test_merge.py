from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retailsync.reconcile.errors import UnsortedSource
from retailsync.reconcile.merge import KeyGroup, merge_by_key, pages_of
from retailsync.reconcile.records import PublishedLevel, StockFigure


async def _pages(records: Sequence[StockFigure], size: int) -> AsyncIterator[list[StockFigure]]:
    async for page in pages_of(records, size):
        yield page


async def _merged(sources: dict[str, list[StockFigure]], size: int) -> list[KeyGroup[StockFigure]]:
    out: list[KeyGroup[StockFigure]] = []
    async for batch in merge_by_key(
        {name: _pages(recs, size) for name, recs in sources.items()}, batch_size=3
    ):
        out.extend(batch)
    return out


def _fig(key: str, qty: int = 1) -> StockFigure:
    sku, _, location = key.partition("@")
    return StockFigure.of(sku, location, qty)


async def test_every_key_once_with_each_sources_records() -> None:
    groups = await _merged(
        {
            "erp": [_fig("A@1"), _fig("B@1"), _fig("D@1")],
            "wms": [_fig("B@1"), _fig("C@1")],
            "storefront": [_fig("A@1"), _fig("D@1")],
        },
        size=1,
    )
    assert [(g.key, sorted(g.records)) for g in groups] == [
        ("A@1", ["erp", "storefront"]),
        ("B@1", ["erp", "wms"]),
        ("C@1", ["wms"]),
        ("D@1", ["erp", "storefront"]),
    ]


async def test_duplicates_across_a_page_boundary_stay_in_one_group() -> None:
    groups = await _merged({"erp": [_fig("A@1"), _fig("A@1", 2), _fig("B@1")]}, size=1)
    assert [g.key for g in groups] == ["A@1", "B@1"]
    assert [r.on_hand for r in groups[0].records["erp"]] == [1, 2]


async def test_unsorted_source_is_refused_with_its_name() -> None:
    with pytest.raises(UnsortedSource, match="'wms' yielded key 'A@1' after 'B@1'"):
        await _merged({"erp": [_fig("A@1")], "wms": [_fig("B@1"), _fig("A@1")]}, size=1)
    with pytest.raises(UnsortedSource):
        await _merged({"wms": [_fig("B@1"), _fig("A@1")]}, size=5)


async def test_empty_sources() -> None:
    assert await _merged({"erp": [], "wms": []}, size=2) == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 30), max_size=25), min_size=1, max_size=4),
    st.integers(1, 7),
)
async def test_merge_equals_grouping_everything_in_memory(
    key_lists: list[list[int]], page_size: int
) -> None:
    sources = {
        f"s{i}": [_fig(f"K{n:03d}@L", n) for n in sorted(keys)] for i, keys in enumerate(key_lists)
    }
    groups = await _merged(sources, page_size)
    expected: dict[str, dict[str, int]] = {}
    for name, recs in sources.items():
        for rec in recs:
            expected.setdefault(rec.key, {}).setdefault(name, 0)
            expected[rec.key][name] += 1
    assert [g.key for g in groups] == sorted(expected)
    assert {g.key: {n: len(r) for n, r in g.records.items()} for g in groups} == expected


def test_level_key_matches_stock_key() -> None:
    assert PublishedLevel.of("SKU-1", "DC1", 3).key == StockFigure.of("SKU-1", "DC1", 3).key


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # sku number
            st.integers(0, 9),  # erp on hand
            st.integers(0, 9),  # wms on hand (differs sometimes)
            st.integers(0, 2),  # allocated
            st.integers(0, 12),  # storefront level
            st.sampled_from(["all", "all", "all", "no_wms", "no_shop", "dup_erp"]),
        ),
        max_size=40,
    ),
    st.integers(1, 6),
)
async def test_agreement_fast_path_finds_exactly_what_full_classification_finds(
    rows: list[tuple[int, int, int, int, int, str]], page_size: int
) -> None:
    from datetime import UTC, datetime

    from retailsync.reconcile.drift import classify_stock, stock_agreement
    from retailsync.reconcile.policy import ReconcilePolicy

    erp: list[StockFigure] = []
    wms: list[StockFigure] = []
    shop: list[PublishedLevel] = []
    for n, on_hand, counted, allocated, level, shape in sorted({r[0]: r for r in rows}.values()):
        sku = f"S{n:03d}"
        erp.append(StockFigure.of(sku, "L", on_hand))
        if shape == "dup_erp":
            erp.append(StockFigure.of(sku, "L", on_hand))
        if shape != "no_wms":
            wms.append(StockFigure.of(sku, "L", counted, allocated=allocated))
        if shape != "no_shop":
            shop.append(PublishedLevel.of(sku, "L", level))
    policy = ReconcilePolicy()
    now = datetime.now(UTC)

    async def run(fast: bool) -> tuple[int, list[tuple[str, str]]]:
        sources = {
            "erp": pages_of(erp, page_size),
            "wms": pages_of(wms, page_size),
            "storefront": pages_of(shop, page_size),
        }
        compared, found = 0, []
        agree = stock_agreement(policy) if fast else None
        async for batch in merge_by_key(sources, batch_size=2, agree=agree):
            compared += batch.compared
            for group in batch:
                found += [(d.key, d.kind.value) for d in classify_stock(group, policy, now)]
        return compared, found

    assert await run(True) == await run(False)
