"""Failure classification and retry delays."""

from __future__ import annotations

import random

import httpx
import pytest

from retailsync.bus.backend import Classification, EventFilter, RetryPolicy
from retailsync.bus.errors import classify
from retailsync.domain.events import CloudEvent
from retailsync.resilience.errors import CircuitOpen, PolicyRejected, UnknownReference


def _status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://erp.example/api")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(code, request=request)
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TimeoutError(), Classification.TRANSIENT),
        (ConnectionResetError(), Classification.TRANSIENT),
        (httpx.ConnectError("refused"), Classification.TRANSIENT),
        (_status_error(503), Classification.TRANSIENT),
        (_status_error(429), Classification.TRANSIENT),
        (_status_error(422), Classification.BUSINESS),
        (UnknownReference("no such SKU"), Classification.BUSINESS),
        (PolicyRejected("refund above limit"), Classification.BUSINESS),
        (KeyError("x"), Classification.TRANSIENT),
    ],
)
def test_classify(error: BaseException, expected: Classification) -> None:
    assert classify(error) is expected


def test_unclassified_errors_become_unknown_when_exhausted() -> None:
    assert classify(KeyError("x"), exhausted=True) is Classification.UNKNOWN
    from datetime import UTC, datetime

    circuit = CircuitOpen("erp", half_open_at=datetime.now(UTC), retry_after=3, reason="5 fails")
    assert classify(circuit, exhausted=True) is Classification.TRANSIENT


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_backoff=1, multiplier=2, max_backoff=5, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in (1, 2, 3, 4, 5)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert 3.2 <= delays[2] <= 4.8
    assert all(4 <= d <= 6 for d in delays[3:])
    assert len({round(policy.delay(2, rng), 6) for _ in range(20)}) > 1
    assert policy.attempts_for(Classification.BUSINESS) == 1
    assert policy.attempts_for(Classification.TRANSIENT) == 5


def test_filters_match_type_and_subject_globs() -> None:
    event = CloudEvent.new(type="retailsync.refund.issued", source="s", subject="order/1", data={})
    assert EventFilter().matches(event)
    assert EventFilter(types=("retailsync.refund.*",)).matches(event)
    assert not EventFilter(types=("retailsync.order.*",)).matches(event)
    assert EventFilter(subjects=("order/*",)).matches(event)
    assert not EventFilter(subjects=("sku/*",)).matches(event)
