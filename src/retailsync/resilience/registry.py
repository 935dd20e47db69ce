"""``Downstreams``: every configured downstream's guard, built from settings in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from sqlalchemy.engine import Engine

from retailsync.resilience.config import DEFAULT_POLICIES, ResilienceSettings
from retailsync.resilience.deferred import DeferredWriteQueue
from retailsync.resilience.errors import UnknownDownstream
from retailsync.resilience.guard import Downstream
from retailsync.resilience.health import ConnectorHealth, connector_health
from retailsync.resilience.ratelimit import LocalTokenBucket, PostgresTokenBucket, TokenBucket


class Downstreams:
    """The hub's downstream systems by name: ``downstreams["erp"]`` or ``downstreams.erp``.

    With a PostgreSQL engine (scale-out) rate limits are shared by all processes through
    ``resilience_rate_buckets``; otherwise (embedded, SQLite) each bucket lives in memory.
    Writes are deferred to ``deferred_writes`` on the same engine.
    """

    def __init__(
        self, settings: ResilienceSettings | None = None, *, engine: Engine | None
    ) -> None:
        self.settings = settings or ResilienceSettings()
        self.engine = engine
        self.queue = DeferredWriteQueue(engine) if engine is not None else None
        names = list(dict.fromkeys([*DEFAULT_POLICIES, *self.settings.downstreams]))
        self._by_name = {name: self._build(name) for name in names}

    @property
    def shares_rate_limits(self) -> bool:
        return (
            self.settings.shared_rate_limits
            and self.engine is not None
            and self.engine.dialect.name == "postgresql"
        )

    def _build(self, name: str) -> Downstream:
        policy = self.settings.policy_for(name)
        bucket: TokenBucket
        if self.shares_rate_limits:
            assert self.engine is not None
            bucket = PostgresTokenBucket(name, policy.rate_limit, self.engine)
        else:
            bucket = LocalTokenBucket(policy.rate_limit)
        return Downstream(name, policy, bucket=bucket, deferred=self.queue)

    def __getitem__(self, name: str) -> Downstream:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownDownstream(name, list(self._by_name)) from None

    def __getattr__(self, name: str) -> Downstream:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"no downstream named {name!r}") from None

    def __iter__(self) -> Iterator[Downstream]:
        return iter(self._by_name.values())

    def names(self) -> list[str]:
        return list(self._by_name)

    async def health(self) -> list[ConnectorHealth]:
        return [await connector_health(downstream) for downstream in self]

    async def run_drainers(self, stop: asyncio.Event) -> None:
        """Drain every downstream's deferred writes until ``stop`` is set (worker task)."""
        await asyncio.gather(*(downstream.run_drainer(stop) for downstream in self))

    async def close(self) -> None:
        for downstream in self:
            await downstream.close()
