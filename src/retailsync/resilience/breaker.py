"""A circuit breaker per downstream: closed, open, half-open — and why it is in that state.

Transient failures count against it; business refusals count as successes (the downstream
answered). In half-open only ``half_open_max_calls`` trial calls are let through at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from retailsync.resilience.config import BreakerPolicy
from retailsync.resilience.errors import CircuitOpen


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge_value(self) -> int:
        """0 closed, 1 half-open, 2 open (for the Prometheus gauge)."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True)
class Permit:
    """Handed out by :meth:`CircuitBreaker.acquire`; give it back with the call's outcome."""

    trial: bool


@dataclass(frozen=True)
class BreakerTransition:
    downstream: str
    old: BreakerState
    new: BreakerState
    reason: str
    at: datetime


class CircuitBreaker:
    """Tracks one downstream's health and refuses calls while it is known to be failing."""

    def __init__(
        self,
        downstream: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.downstream = downstream
        self.policy = policy
        self._clock = clock
        self._wall = wall_clock
        self._state = BreakerState.CLOSED
        self._reason = "no failures recorded"
        self._consecutive_failures = 0
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._open_until = 0.0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._changed_at = wall_clock()
        self.opened_count = 0
        self._listeners: list[Callable[[BreakerTransition], None]] = []

    # -- observation -----------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        self._maybe_half_open()
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def changed_at(self) -> datetime:
        return self._changed_at

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def half_open_at(self) -> datetime | None:
        """When an open breaker lets a trial call through (None unless open)."""
        if self.state is not BreakerState.OPEN:
            return None
        return self._wall() + timedelta(seconds=max(0.0, self._open_until - self._clock()))

    def on_transition(self, listener: Callable[[BreakerTransition], None]) -> None:
        """Call ``listener`` on every state change (logging, metrics, draining)."""
        self._listeners.append(listener)

    # -- the call protocol -----------------------------------------------------------------

    def acquire(self, operation: str | None = None) -> Permit:
        """A permit to call the downstream, or :class:`CircuitOpen`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(trial=False)
        if state is BreakerState.HALF_OPEN:
            if self._trials_in_flight < self.policy.half_open_max_calls:
                self._trials_in_flight += 1
                return Permit(trial=True)
            raise CircuitOpen(
                self.downstream,
                half_open_at=self._wall(),
                retry_after=0.5,
                reason=f"half-open, a trial call is in flight ({self._reason})",
                operation=operation,
            )
        remaining = max(0.0, self._open_until - self._clock())
        raise CircuitOpen(
            self.downstream,
            half_open_at=self._wall() + timedelta(seconds=remaining),
            retry_after=remaining,
            reason=self._reason,
            operation=operation,
        )

    def check(self, operation: str | None = None) -> None:
        """Raise :class:`CircuitOpen` when the breaker is open (takes no trial slot)."""
        if self.state is BreakerState.OPEN:
            self.acquire(operation)

    def record_success(self, permit: Permit) -> None:
        now = self._clock()
        self._record(now, ok=True)
        self._consecutive_failures = 0
        if permit.trial:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)
            if self._state is BreakerState.HALF_OPEN:
                self._trial_successes += 1
                if self._trial_successes >= self.policy.half_open_successes:
                    self._transition(BreakerState.CLOSED, "trial call succeeded")

    def record_failure(self, permit: Permit, error: BaseException) -> None:
        now = self._clock()
        self._record(now, ok=False)
        self._consecutive_failures += 1
        if permit.trial:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)
        if self._state is BreakerState.HALF_OPEN:
            self._open(f"trial call failed: {error}")
            return
        if self._state is not BreakerState.CLOSED:
            return
        if self._consecutive_failures >= self.policy.consecutive_failures:
            self._open(
                f"{self._consecutive_failures} consecutive transient failures, last: {error}"
            )
            return
        total = len(self._outcomes)
        if total >= self.policy.minimum_calls:
            failures = sum(1 for _, ok in self._outcomes if not ok)
            if failures / total >= self.policy.failure_rate:
                self._open(
                    f"{failures} of {total} calls failed in the last "
                    f"{self.policy.window_seconds:g}s, last: {error}"
                )

    def release(self, permit: Permit) -> None:
        """Give back a permit whose call ended in neither success nor a transient failure."""
        if permit.trial:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)

    def force_open(self, reason: str) -> None:
        """Open the breaker by hand (maintenance window announced by the downstream)."""
        self._open(f"opened by operator: {reason}")

    def reset(self) -> None:
        """Close the breaker by hand and forget recorded failures."""
        self._outcomes.clear()
        self._consecutive_failures = 0
        self._transition(BreakerState.CLOSED, "closed by operator")

    # -- internals -------------------------------------------------------------------------

    def _record(self, now: float, *, ok: bool) -> None:
        self._outcomes.append((now, ok))
        horizon = now - self.policy.window_seconds
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()

    def _open(self, reason: str) -> None:
        now = self._clock()
        self._opened_at = now
        self._open_until = now + self.policy.open_seconds
        self._trials_in_flight = 0
        self._trial_successes = 0
        self.opened_count += 1
        self._transition(BreakerState.OPEN, reason)

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._trials_in_flight = 0
            self._trial_successes = 0
            self._transition(
                BreakerState.HALF_OPEN,
                f"open for {self.policy.open_seconds:g}s, letting a trial call through "
                f"(opened because: {self._reason})",
            )

    def _transition(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        self._reason = reason
        self._changed_at = self._wall()
        if new is BreakerState.CLOSED:
            self._consecutive_failures = 0
        if old is new and new is BreakerState.CLOSED:
            return
        event = BreakerTransition(self.downstream, old, new, reason, self._changed_at)
        for listener in list(self._listeners):
            listener(event)
