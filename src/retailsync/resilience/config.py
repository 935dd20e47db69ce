"""Resilience policies per downstream system, as pydantic models with per-system defaults.

Settings path: ``resilience.downstreams.<name>.<section>.<field>``, e.g.
``RETAILSYNC_RESILIENCE__DOWNSTREAMS__ERP__RATE_LIMIT__LIMIT=40``. A system that is not
configured gets :func:`default_policy` for its name.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retailsync.resilience.errors import ResilienceConfigError


class Lane(IntEnum):
    """Priority lanes: lower value is served first when a downstream is saturated."""

    AGENT = 0  # a person is waiting (service agent screen, API caller)
    BATCH = 1  # workflows and syncs that run behind the scenes
    BACKFILL = 2  # bulk history loads, reconciliation sweeps

    @property
    def label(self) -> str:
        return self.name.lower()


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Policy):
    """Exponential backoff with full jitter, honouring ``Retry-After``."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    initial_backoff_seconds: float = Field(default=0.2, gt=0)
    max_backoff_seconds: float = Field(default=10.0, gt=0)
    #: A ``Retry-After`` longer than this ends the retries (the caller defers instead).
    max_retry_after_seconds: float = Field(default=30.0, ge=0)


class BreakerPolicy(_Policy):
    """When the circuit opens, how long it stays open and how it closes again."""

    consecutive_failures: int = Field(default=5, ge=1)
    #: Also open when this share of calls in the window failed (with at least ``minimum_calls``).
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    minimum_calls: int = Field(default=20, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    open_seconds: float = Field(default=30.0, gt=0)
    half_open_max_calls: int = Field(default=1, ge=1)
    half_open_successes: int = Field(default=1, ge=1)


class BulkheadPolicy(_Policy):
    """How many calls may be in flight at once, per process."""

    max_concurrent: int = Field(default=8, ge=1)


class RateLimitPolicy(_Policy):
    """At most ``limit`` calls start in any window of ``period_seconds``, across all processes.

    Implemented as a token bucket of ``burst`` tokens refilled at
    ``(limit - burst) / (period_seconds + jitter_allowance_seconds)`` per second, so a burst
    plus a full window of refill still stays under ``limit`` even when calls reach the
    downstream up to ``jitter_allowance_seconds`` later than they were admitted.
    ``agent_reserve`` tokens can only be spent by the agent lane.
    """

    limit: int = Field(default=20, ge=1)
    period_seconds: float = Field(default=1.0, gt=0)
    burst: int | None = Field(default=None, ge=1)
    agent_reserve: int | None = Field(default=None, ge=0)
    jitter_allowance_seconds: float = Field(default=0.05, ge=0)

    @property
    def capacity(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(1, self.limit // 10)

    @property
    def reserve(self) -> int:
        if self.agent_reserve is not None:
            return self.agent_reserve
        return self.capacity // 2

    @property
    def refill_per_second(self) -> float:
        return (self.limit - self.capacity) / (self.period_seconds + self.jitter_allowance_seconds)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.capacity >= self.limit and self.limit > 1:
            raise ResilienceConfigError(
                f"rate_limit.burst ({self.capacity}) must be smaller than rate_limit.limit "
                f"({self.limit}): the burst is part of the limit, the rest is refill"
            )
        if self.limit == 1 and self.capacity == 1:
            raise ResilienceConfigError(
                "rate_limit.limit of 1 leaves nothing to refill: raise period_seconds and limit "
                "together (for example limit=2, period_seconds=2)"
            )
        if self.reserve >= self.capacity and self.reserve > 0:
            raise ResilienceConfigError(
                f"rate_limit.agent_reserve ({self.reserve}) must be smaller than the burst "
                f"({self.capacity}), or batch work could never start"
            )
        return self


class LanePolicy(_Policy):
    """How long a call may wait for a slot and a token before it is refused (back-pressure)."""

    agent_max_wait_seconds: float = Field(default=5.0, gt=0)
    batch_max_wait_seconds: float = Field(default=300.0, gt=0)
    backfill_max_wait_seconds: float = Field(default=3600.0, gt=0)

    def max_wait(self, lane: Lane) -> float:
        if lane is Lane.AGENT:
            return self.agent_max_wait_seconds
        if lane is Lane.BATCH:
            return self.batch_max_wait_seconds
        return self.backfill_max_wait_seconds


class DeferredWritePolicy(_Policy):
    """How writes that could not be sent are kept and drained."""

    enabled: bool = True
    drain_batch_size: int = Field(default=50, ge=1)
    drain_concurrency: int = Field(default=4, ge=1)
    drain_interval_seconds: float = Field(default=2.0, gt=0)
    #: A worker that claimed a write and died releases it after this long.
    claim_lease_seconds: float = Field(default=120.0, gt=0)
    retry_backoff_seconds: float = Field(default=5.0, ge=0)


class ResiliencePolicy(_Policy):
    """Everything that protects one downstream system."""

    timeout_seconds: float = Field(default=10.0, gt=0)
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    bulkhead: BulkheadPolicy = BulkheadPolicy()
    rate_limit: RateLimitPolicy = RateLimitPolicy()
    lanes: LanePolicy = LanePolicy()
    deferred_writes: DeferredWritePolicy = DeferredWritePolicy()
    #: Sliding window for the health snapshot (error rate, latency percentiles).
    stats_window_seconds: float = Field(default=300.0, gt=0)


#: Per-system defaults: the ERP is protected hardest; SaaS limits follow their public quotas.
DEFAULT_POLICIES: dict[str, ResiliencePolicy] = {
    "erp": ResiliencePolicy(
        timeout_seconds=15.0,
        bulkhead=BulkheadPolicy(max_concurrent=8),
        rate_limit=RateLimitPolicy(limit=20, burst=4, agent_reserve=2),
    ),
    "service_desk": ResiliencePolicy(
        timeout_seconds=10.0,
        bulkhead=BulkheadPolicy(max_concurrent=6),
        rate_limit=RateLimitPolicy(limit=10, burst=2, agent_reserve=1),
    ),
    "payments": ResiliencePolicy(
        timeout_seconds=20.0,
        retry=RetryPolicy(max_attempts=3),
        bulkhead=BulkheadPolicy(max_concurrent=10),
        rate_limit=RateLimitPolicy(limit=25, burst=5, agent_reserve=2),
    ),
    "commerce": ResiliencePolicy(
        timeout_seconds=10.0,
        bulkhead=BulkheadPolicy(max_concurrent=4),
        rate_limit=RateLimitPolicy(limit=4, burst=2, agent_reserve=1),
    ),
    "wms": ResiliencePolicy(
        timeout_seconds=10.0,
        bulkhead=BulkheadPolicy(max_concurrent=6),
        rate_limit=RateLimitPolicy(limit=10, burst=2, agent_reserve=1),
    ),
}


def default_policy(name: str) -> ResiliencePolicy:
    """The built-in policy for ``name`` (a generic one for systems without defaults)."""
    return DEFAULT_POLICIES.get(name, ResiliencePolicy())


class ResilienceSettings(BaseModel):
    """The ``resilience`` section of the hub's settings."""

    model_config = ConfigDict(extra="forbid")

    downstreams: dict[str, ResiliencePolicy] = Field(default_factory=lambda: dict(DEFAULT_POLICIES))
    #: In scale-out mode (PostgreSQL) rate limits are shared by all processes.
    shared_rate_limits: bool = True

    def policy_for(self, name: str) -> ResiliencePolicy:
        return self.downstreams.get(name) or default_policy(name)
