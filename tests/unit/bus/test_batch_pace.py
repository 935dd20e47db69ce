"""How many events a SQL delivery batch takes on, from how long its handlers took."""

from __future__ import annotations

import pytest

from retailsync.bus.backends.sql import BatchPace
from retailsync.bus.consumer import HandlerTime


def test_without_a_handler_run_there_is_no_estimate() -> None:
    pace = BatchPace(hold_limit=0.05)
    assert pace.limit() is None
    pace.record(HandlerTime(attempted=0, seconds=0.0))  # only duplicates or held events
    assert pace.limit() is None


def test_a_batch_takes_on_what_its_handlers_run_in_most_of_the_hold_limit() -> None:
    pace = BatchPace(hold_limit=0.05)
    pace.record(HandlerTime(attempted=20, seconds=0.2))  # 10 ms a handler
    assert pace.limit() == 4  # 80 % of 50 ms


def test_fast_handlers_are_not_limited_below_a_full_batch() -> None:
    pace = BatchPace(hold_limit=0.05)
    pace.record(HandlerTime(attempted=500, seconds=0.002))  # 4 µs a handler
    limit = pace.limit()
    assert limit is not None and limit >= 500


def test_the_estimate_follows_the_latest_batches() -> None:
    pace = BatchPace(hold_limit=0.1)
    pace.record(HandlerTime(attempted=1, seconds=1.0))  # one slow downstream call
    assert pace.limit() == 1
    for _ in range(12):  # handlers are back to 1 ms: a dozen batches bring the limit back
        taken = pace.limit() or 1
        pace.record(HandlerTime(attempted=taken, seconds=0.001 * taken))
    assert 60 <= (pace.limit() or 0) <= 80
    for _ in range(20):
        pace.record(HandlerTime(attempted=10, seconds=0.01))
    assert pace.seconds_per_handler == pytest.approx(0.001, rel=0.01)


def test_no_time_to_spare_means_one_event_a_batch() -> None:
    pace = BatchPace(hold_limit=0.0)
    pace.record(HandlerTime(attempted=1, seconds=0.001))
    assert pace.limit() == 1
