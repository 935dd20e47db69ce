"""Resilience for every outbound call: timeouts, retries, circuit breakers, rate and
concurrency limits with priority lanes, stale reads and durably deferred writes.

Connectors call ``downstreams["erp"].call(...)`` / ``.read(...)`` / ``.write(...)`` and raise
the errors in :mod:`retailsync.resilience.errors`. May import ``retailsync.db``,
``retailsync.config`` and ``retailsync.observability`` (the guard observes each attempt);
never imports connectors, workflows or the API layer (``api.py`` is the router the
application includes).
"""

from __future__ import annotations

from retailsync.resilience.breaker import BreakerState, CircuitBreaker
from retailsync.resilience.config import (
    DEFAULT_POLICIES,
    BreakerPolicy,
    BulkheadPolicy,
    DeferredWritePolicy,
    Lane,
    LanePolicy,
    RateLimitPolicy,
    ResiliencePolicy,
    ResilienceSettings,
    RetryPolicy,
    default_policy,
)
from retailsync.resilience.errors import (
    BusinessError,
    CircuitOpen,
    ConflictRejected,
    DownstreamThrottled,
    DownstreamTimeout,
    DownstreamUnavailable,
    Overloaded,
    PolicyRejected,
    TransientError,
    UnknownReference,
    ValidationRejected,
    is_transient,
)
from retailsync.resilience.guard import Downstream, ReadResult, StaleValue, WriteOutcome
from retailsync.resilience.lanes import current_lane, using_lane
from retailsync.resilience.registry import Downstreams

__all__ = [
    "DEFAULT_POLICIES",
    "BreakerPolicy",
    "BreakerState",
    "BulkheadPolicy",
    "BusinessError",
    "CircuitBreaker",
    "CircuitOpen",
    "ConflictRejected",
    "DeferredWritePolicy",
    "Downstream",
    "DownstreamThrottled",
    "DownstreamTimeout",
    "DownstreamUnavailable",
    "Downstreams",
    "Lane",
    "LanePolicy",
    "Overloaded",
    "PolicyRejected",
    "RateLimitPolicy",
    "ReadResult",
    "ResiliencePolicy",
    "ResilienceSettings",
    "RetryPolicy",
    "StaleValue",
    "TransientError",
    "UnknownReference",
    "ValidationRejected",
    "WriteOutcome",
    "current_lane",
    "default_policy",
    "is_transient",
    "using_lane",
]
