"""A burst of queued batch writes with agent reads in between, against the test downstream.

Used in-process by the burst test and as a separate worker process
(``python resilience_burst.py DATABASE_URL SERVER_URL PREFIX WRITES START_AT``) by the
two-process test, which reads the JSON summary it prints.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from resilience_erp_client import MiniErpClient

from retailsync.resilience import (
    BulkheadPolicy,
    Downstream,
    Lane,
    LanePolicy,
    RateLimitPolicy,
    ResiliencePolicy,
)


def burst_policy(limit: int, burst: int, reserve: int) -> ResiliencePolicy:
    return ResiliencePolicy(
        timeout_seconds=5,
        bulkhead=BulkheadPolicy(max_concurrent=16),
        rate_limit=RateLimitPolicy(
            limit=limit, burst=burst, agent_reserve=reserve, jitter_allowance_seconds=0.15
        ),
        lanes=LanePolicy(agent_max_wait_seconds=5, batch_max_wait_seconds=120),
    )


async def run_burst(
    erp: Downstream,
    client: MiniErpClient,
    *,
    writes: int,
    agent_reads: int,
    prefix: str,
    agent_interval: float = 0.1,
) -> dict[str, Any]:
    """Queue ``writes`` batch writes at once, then issue agent reads while they drain."""
    write_done: list[float] = []
    agent_latencies: list[float] = []
    overtaken: list[tuple[int, int]] = []  # (writes still queued, writes finished meanwhile)
    started = time.monotonic()

    async def write(n: int) -> None:
        key = f"{prefix}-{n}"
        await erp.call(
            "issue_refund",
            lambda: client.issue_refund({"amount": 1}, key),
            lane=Lane.BATCH,
            idempotency_key=key,
            mutating=True,
        )
        write_done.append(time.monotonic() - started)

    async def agent() -> None:
        await asyncio.sleep(0.5)  # the batch has saturated the limit by now
        for n in range(agent_reads):
            t0 = time.monotonic()
            done_before = len(write_done)
            await erp.call(
                "get_order", lambda n=n: client.get_order(f"{prefix}-SO-{n}"), lane=Lane.AGENT
            )
            agent_latencies.append(time.monotonic() - t0)
            overtaken.append((writes - done_before, len(write_done) - done_before))
            await asyncio.sleep(agent_interval)

    await asyncio.gather(*(write(n) for n in range(writes)), agent())
    write_done.sort()
    return {
        "duration": time.monotonic() - started,
        "writes": len(write_done),
        "write_median_done": write_done[len(write_done) // 2] if write_done else None,
        "agent_latencies": agent_latencies,
        "overtaken": overtaken,
    }


async def _main(
    database_url: str, server_url: str, prefix: str, writes: int, start_at: float
) -> None:
    from retailsync.db import create_engine_for
    from retailsync.resilience import Downstreams, ResilienceSettings

    engine = create_engine_for(database_url, pool_size=4)
    policy = burst_policy(limit=200, burst=20, reserve=6)
    downstreams = Downstreams(ResilienceSettings(downstreams={"erp": policy}), engine=engine)
    client = MiniErpClient(server_url)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        summary = await run_burst(
            downstreams.erp, client, writes=writes, agent_reads=10, prefix=prefix
        )
        summary["shared"] = downstreams.shares_rate_limits
    finally:
        await client.aclose()
        await downstreams.close()
        engine.dispose()
    print(json.dumps(summary))


if __name__ == "__main__":
    url, server, prefix, count, start = sys.argv[1:6]
    asyncio.run(_main(url, server, prefix, int(count), float(start)))
