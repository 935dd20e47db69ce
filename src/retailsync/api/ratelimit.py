"""Per-client rate limits by route class (read, write, process, admin): 429 + ``Retry-After``.

One token bucket per (client, route class), in this process's memory. In scale-out mode each
API process enforces the limit on its own, so a client behind a load balancer with N API
processes may reach up to N times the limit (docs/decisions/0005-api-governance.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from retailsync.api.problems import ProblemError
from retailsync.api.scopes import Principal, RouteClass
from retailsync.api.settings import RateLimitSettings, RouteClassLimit
from retailsync.resilience.config import RateLimitPolicy
from retailsync.resilience.ratelimit import LocalTokenBucket


def _policy(limit: RouteClassLimit) -> RateLimitPolicy:
    return RateLimitPolicy(
        limit=limit.limit,
        period_seconds=limit.period_seconds,
        burst=limit.burst,
        agent_reserve=0,
        jitter_allowance_seconds=0,
    )


class ClientRateLimiter:
    """Admits or refuses one request of a client on a route class."""

    def __init__(
        self, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._policies = {
            route_class: _policy(getattr(settings, route_class.value)) for route_class in RouteClass
        }
        self._buckets: dict[tuple[str, RouteClass], LocalTokenBucket] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, principal: Principal, route_class: RouteClass) -> float:
        """0.0 when the request may go ahead (its token is taken), else how long to wait."""
        if not self.settings.enabled:
            return 0.0
        key = (principal.rate_limit_key, route_class)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = LocalTokenBucket(self._policies[route_class], clock=self._clock)
                self._buckets[key] = bucket
            return bucket.take_now(0)

    def admit(self, principal: Principal, route_class: RouteClass) -> None:
        """Let the request through, or raise a 429 problem with ``Retry-After``."""
        wait = self.wait_seconds(principal, route_class)
        if wait <= 0:
            return
        limit: RouteClassLimit = getattr(self.settings, route_class.value)
        retry_after = max(1, math.ceil(wait))
        raise ProblemError(
            429,
            "rate-limited",
            f"Client {principal.client_id} exceeded the {route_class.value} limit of "
            f"{limit.limit} requests per {limit.period_seconds:g} s; retry after "
            f"{retry_after} s.",
            title="Too many requests",
            headers={"Retry-After": str(retry_after)},
            route_class=route_class.value,
        )
