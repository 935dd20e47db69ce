"""The composed-view cache: reused while the read model's rows and the freshness are equal,
recomposed as soon as anything the answer is built from changes (in any process)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy.engine import Engine
from views_support import OrderStory

from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.views import apply_event
from retailsync.views.composed import ComposedViews
from retailsync.views.models import ErpOrderSnapshot
from retailsync.views.read import (
    Order360Rows,
    compose_order_360,
    erp_snapshot_from_json,
    load_order_360_rows,
    recorded_freshness,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _apply(engine: Engine, *events: object) -> None:
    for event in events:
        with engine.begin() as connection:
            apply_event(connection, event)


def _rows(engine: Engine, order_id: str) -> Order360Rows:
    with engine.connect() as connection:
        rows = load_order_360_rows(connection, order_id)
    assert rows is not None
    return rows


def test_equal_rows_give_the_same_answer_with_the_age_of_this_moment(engine: Engine) -> None:
    story = OrderStory()
    _apply(engine, *story.all_events())
    cache = ComposedViews()
    rows = _rows(engine, story.order.id)
    freshness = recorded_freshness(rows)

    now = freshness.as_of + dt.timedelta(seconds=2)
    first = cache.json(rows, freshness, now)
    later = now + dt.timedelta(seconds=7.25)
    again = cache.json(_rows(engine, story.order.id), recorded_freshness(rows), later)

    assert (cache.misses, cache.hits) == (1, 1)
    composed = compose_order_360(rows, freshness, now=later)
    assert json.loads(again) == json.loads(composed.model_dump_json(by_alias=True))
    assert (json.loads(first)["age_seconds"], json.loads(again)["age_seconds"]) == (2.0, 9.25)
    view = cache.view(rows, freshness, later)
    assert view == composed
    assert view is not cache.view(rows, freshness, later)  # callers get their own copy


def test_an_event_written_since_recomposes_the_answer(engine: Engine) -> None:
    story = OrderStory()
    _apply(engine, story.placed(), story.dispatched())
    cache = ComposedViews()
    rows = _rows(engine, story.order.id)
    before = json.loads(cache.json(rows, recorded_freshness(rows), NOW))

    _apply(engine, story.delivered(), story.case_opened())
    rows = _rows(engine, story.order.id)
    after = json.loads(cache.json(rows, recorded_freshness(rows), NOW))

    assert cache.misses == 2
    assert [s["status"] for s in before["shipments"]] == ["dispatched"]
    assert [s["status"] for s in after["shipments"]] == ["delivered"]
    assert [c["subject"] for c in after["cases"]] == ["Where is my parcel?"]


def test_a_different_freshness_or_snapshot_recomposes_the_answer(engine: Engine) -> None:
    story = OrderStory()
    _apply(engine, story.placed())
    cache = ComposedViews()
    rows = _rows(engine, story.order.id)
    fresh = recorded_freshness(rows)
    snapshot = ErpOrderSnapshot(
        status=OrderStatus.PROCESSING,
        erp_state="processing",
        total=Money.of("54.80", "EUR"),
        cancellable=True,
    )
    stale = type(fresh)(True, fresh.as_of, "the ERP is unavailable", fresh.snapshot)
    confirmed = type(fresh)(False, NOW, None, snapshot, NOW)
    same_content = snapshot.model_copy()

    answers = [
        json.loads(cache.json(rows, freshness, NOW))
        for freshness in (fresh, stale, confirmed, confirmed)
    ]
    json.loads(cache.json(rows, type(fresh)(False, NOW, None, same_content, NOW), NOW))

    assert [a["stale"] for a in answers] == [False, True, False, False]
    assert answers[1]["stale_reason"] == "the ERP is unavailable"
    assert answers[2]["erp"]["status"] == "processing" and answers[0]["erp"] is None
    # A snapshot is recognised by identity only: an equal copy is composed again, safely.
    assert (cache.misses, cache.hits) == (4, 1)


def test_the_cache_keeps_at_most_its_capacity(engine: Engine) -> None:
    stories = [OrderStory() for _ in range(3)]
    for story in stories:
        _apply(engine, story.placed())
    cache = ComposedViews(capacity=2)
    for story in [*stories, stories[0]]:
        rows = _rows(engine, story.order.id)
        cache.json(rows, recorded_freshness(rows), NOW)
    assert cache.misses == 4  # the first order had left the cache when it came back
    with pytest.raises(ValueError, match="at least one"):
        ComposedViews(capacity=0)


def test_a_stored_snapshot_is_parsed_once_and_cannot_be_changed() -> None:
    text = ErpOrderSnapshot(
        status=OrderStatus.CONFIRMED,
        erp_state="confirmed",
        total=Money.of("10.00", "EUR"),
        cancellable=True,
    ).model_dump_json()
    parsed = erp_snapshot_from_json(text)
    assert erp_snapshot_from_json(str(text)) is parsed
    with pytest.raises(ValueError, match="frozen"):
        parsed.cancellable = False
