"""Sliding-window call statistics per downstream: error rate and latency percentiles."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WindowStats:
    calls: int
    failures: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class CallStats:
    """Keeps the last ``window_seconds`` of outcomes (bounded) and lifetime counters."""

    window_seconds: float
    max_samples: int = 20_000
    clock: Callable[[], float] = time.monotonic
    _samples: deque[tuple[float, float, bool]] = field(default_factory=deque)
    totals: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    deferred_writes: int = 0
    stale_reads: int = 0
    last_error: str | None = None

    def record(self, latency_seconds: float, *, outcome: str) -> None:
        """``outcome`` is ``ok``, ``business``, ``transient``, ``timeout`` or ``error``."""
        failed = outcome in ("transient", "timeout", "error")
        self._samples.append((self.clock(), latency_seconds, failed))
        if len(self._samples) > self.max_samples:
            self._samples.popleft()
        self.totals[outcome] += 1

    def snapshot(self) -> WindowStats:
        horizon = self.clock() - self.window_seconds
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        calls = len(self._samples)
        if calls == 0:
            return WindowStats(0, 0, 0.0, None, None, None)
        failures = sum(1 for _, _, failed in self._samples if failed)
        latencies = sorted(latency for _, latency, _ in self._samples)
        return WindowStats(
            calls=calls,
            failures=failures,
            error_rate=failures / calls,
            p50_ms=_percentile(latencies, 0.50) * 1000,
            p95_ms=_percentile(latencies, 0.95) * 1000,
            p99_ms=_percentile(latencies, 0.99) * 1000,
        )


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]
