"""Scale-out: worker processes share the partitions (leases); one is killed (SIGKILL) mid-run.

Asserts nothing lost, nothing applied twice, per-key order kept, and the work shared.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailsync.bus.backend import BackendConfig, BusOptions
from retailsync.bus.backends import nats as nats_backend
from retailsync.bus.testkit import keyed_event
from retailsync.db import create_engine_for, upgrade_database

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.slow]

WORKER = Path(__file__).with_name("nats_scale_worker.py")
KEYS = 16
PER_KEY = 30
SHARDS = 8


def _effects(engine: sa.Engine) -> list[sa.Row[tuple[int, str, int, str, int]]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT id, partition_key, position, event_id, worker_pid "
                    "FROM nats_scale_effects ORDER BY id"
                )
            )
        )


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM nats_scale_effects")).scalar_one())


async def _wait_for(engine: sa.Engine, at_least: int, within: float) -> int:
    deadline = time.monotonic() + within
    count = _count(engine)
    while count < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        count = _count(engine)
    return count


async def _wait_for_rows_of(engine: sa.Engine, worker_pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(row.worker_pid == worker_pid for row in _effects(engine)):
            return
        await asyncio.sleep(0.02)


async def _wait_for_owners(
    engine: sa.Engine, namespace: str, workers: int, within: float
) -> dict[str, int]:
    """Partitions per lease owner, once ``workers`` owners share them (or after ``within``)."""
    deadline = time.monotonic() + within
    while True:
        with engine.connect() as conn:
            owners = {
                str(owner): int(count)
                for owner, count in conn.execute(
                    sa.text(
                        "SELECT owner, count(*) FROM bus_partition_leases "
                        "WHERE namespace = :ns AND owner IS NOT NULL GROUP BY owner"
                    ),
                    {"ns": namespace},
                )
            }
        if len(owners) >= workers or time.monotonic() > deadline:
            return owners
        await asyncio.sleep(0.1)


async def test_workers_share_the_work_and_survive_a_kill(postgres_url: str, nats_url: str) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    from nats_scale_worker import EFFECTS_DDL  # the worker script next to this test

    with engine.begin() as conn:
        conn.exec_driver_sql(EFFECTS_DDL)
    namespace = f"NS{os.getpid()}{int(time.time() * 1000) % 10_000_000}"
    publisher = nats_backend.create_backend(
        BackendConfig(
            database_url=postgres_url,
            nats_url=nats_url,
            namespace=namespace,
            options=BusOptions(shards=SHARDS),
        )
    )
    await publisher.start()
    workers: list[asyncio.subprocess.Process] = []
    try:
        events = [keyed_event(f"k{k}", n) for n in range(PER_KEY) for k in range(KEYS)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        for number in range(3):
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(WORKER),
                    postgres_url,
                    nats_url,
                    namespace,
                    f"w{number}",
                    str(SHARDS),
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
            )
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 60)
            assert line.strip() == b"ready"
        # The partitions are leased out fairly: every worker serves some of them.
        owners = await _wait_for_owners(engine, namespace, len(workers), within=20)
        assert len(owners) == len(workers), owners
        for start in range(0, len(events), 200):
            await publisher.publish(events[start : start + 200])

        victim = workers[0]
        await _wait_for(engine, len(events) // 4, within=30)
        # and until the victim itself has applied something (it may start late)
        await _wait_for_rows_of(engine, victim.pid, within=15)
        before_kill = _count(engine)
        assert before_kill < len(events), "the run finished before the kill: make it longer"
        victim.send_signal(signal.SIGKILL)
        await asyncio.wait_for(victim.wait(), 10)
        victim_rows = sum(1 for r in _effects(engine) if r.worker_pid == victim.pid)

        final = await _wait_for(engine, len(events), within=45)
        await asyncio.sleep(1.5)  # anything still in flight would show up now
        rows = _effects(engine)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                await asyncio.wait_for(worker.wait(), 15)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        await publisher.close()
        await nats_backend.delete_namespace(nats_url, namespace)

    assert final == len(events)
    assert len(rows) == len(events)  # nothing doubled
    assert {r.event_id for r in rows} == {e.id for e in events}  # nothing lost
    positions: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        positions[row.partition_key].append(row.position)
    assert all(positions[f"k{k}"] == list(range(PER_KEY)) for k in range(KEYS))  # order kept
    by_worker = defaultdict(int)
    for row in rows:
        by_worker[row.worker_pid] += 1
    assert victim_rows > 0 and by_worker[victim.pid] == victim_rows
    survivors = [w.pid for w in workers[1:]]
    assert all(by_worker[pid] > 0 for pid in survivors)  # the work was shared
    assert workers[1].returncode == 0 and workers[2].returncode == 0
    engine.dispose()
