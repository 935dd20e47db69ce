"""The circuit breaker's states, driven by a fake clock."""

from __future__ import annotations

import pytest

from retailsync.resilience import BreakerPolicy, BreakerState, CircuitBreaker, CircuitOpen
from retailsync.resilience.errors import DownstreamUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failure() -> DownstreamUnavailable:
    return DownstreamUnavailable("erp failed get_order (HTTP 503)")


def test_opens_after_consecutive_failures_and_half_opens_after_the_open_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "erp", BreakerPolicy(consecutive_failures=3, open_seconds=10), clock=clock
    )
    transitions = []
    breaker.on_transition(transitions.append)
    for _ in range(2):
        breaker.record_failure(breaker.acquire(), failure())
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success(breaker.acquire())  # a success resets the streak
    for _ in range(3):
        breaker.record_failure(breaker.acquire(), failure())
    assert breaker.state is BreakerState.OPEN
    assert "3 consecutive transient failures" in breaker.reason

    clock.now += 4
    with pytest.raises(CircuitOpen) as raised:
        breaker.acquire("get_order")
    assert raised.value.retry_after == pytest.approx(6)
    assert raised.value.reason == breaker.reason

    clock.now += 6
    assert breaker.state is BreakerState.HALF_OPEN
    trial = breaker.acquire()
    assert trial.trial
    with pytest.raises(CircuitOpen):
        breaker.acquire()  # only one trial call at a time
    breaker.record_success(trial)
    assert breaker.state is BreakerState.CLOSED
    assert [t.new for t in transitions] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_failed_trial_reopens_and_rate_threshold_opens() -> None:
    clock = FakeClock()
    policy = BreakerPolicy(
        consecutive_failures=100, failure_rate=0.5, minimum_calls=10, open_seconds=5
    )
    breaker = CircuitBreaker("wms", policy, clock=clock)
    for n in range(10):
        permit = breaker.acquire()
        if n % 2:
            breaker.record_failure(permit, failure())
        else:
            breaker.record_success(permit)
    assert breaker.state is BreakerState.OPEN
    assert "5 of 10 calls failed" in breaker.reason
    clock.now += 5
    breaker.record_failure(breaker.acquire(), failure())
    assert breaker.state is BreakerState.OPEN
    assert breaker.reason.startswith("trial call failed")
    assert breaker.opened_count == 2


def test_released_permit_frees_the_trial_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "erp", BreakerPolicy(consecutive_failures=1, open_seconds=1), clock=clock
    )
    breaker.record_failure(breaker.acquire(), failure())
    clock.now += 1
    trial = breaker.acquire()
    breaker.release(trial)
    assert breaker.acquire().trial
