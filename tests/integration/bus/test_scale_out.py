"""Scale-out: several worker processes on PostgreSQL share the work, keep each key's order and
apply each effect once, also when one of them is killed; SQLite refuses a second worker."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from test_crash import assert_once_and_in_order, effects, spawn, wait_ready

from retailsync.bus.backend import BackendConfig, BusOptions, Subscription
from retailsync.bus.backends.sql import create_backend
from retailsync.bus.errors import ScaleOutNotSupported
from retailsync.bus.testkit import EFFECTS_TABLE, RecordingHandler, ensure_effects_table
from retailsync.db import create_engine_for, upgrade_database

EVENTS = 600
KEYS = 60


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_share_keys_and_survive_a_killed_peer(postgres_url: str, tmp_path: Path) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    with engine.begin() as conn:  # the effects table plus the order in which rows were written
        conn.exec_driver_sql(
            f"CREATE TABLE {EFFECTS_TABLE} (subscriber VARCHAR(100) NOT NULL, "
            "event_source VARCHAR(500) NOT NULL, event_id VARCHAR(200) NOT NULL, "
            "partition_key VARCHAR(500), position INTEGER, worker_pid INTEGER NOT NULL, "
            "handled_seq BIGSERIAL NOT NULL)"
        )
    ensure_effects_table(engine)
    workers = [spawn("worker", postgres_url, f"w{n}", "1.0", "0.003") for n in range(3)]
    for worker in workers:
        wait_ready(worker)
    ack_file = tmp_path / "acks.txt"
    publisher = spawn("publish", postgres_url, str(EVENTS), str(KEYS), str(ack_file))
    deadline = time.monotonic() + 60
    while len(effects(engine)) < EVENTS // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)  # mid-run, holding leases and an open batch
    victim.wait()
    at_kill = len(effects(engine))
    assert publisher.wait(timeout=60) == 0
    acked = [line for line in ack_file.read_text().splitlines() if line]
    while len(effects(engine)) < EVENTS and time.monotonic() < deadline:
        time.sleep(0.1)
    for worker in workers[1:]:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
    rows = effects(engine)
    assert at_kill < EVENTS, "the kill landed after all work was done"
    assert len(set(acked)) == EVENTS
    assert_once_and_in_order(rows, acked)
    assert len(rows) == EVENTS
    with engine.connect() as conn:
        pids = Counter(
            r[0] for r in conn.exec_driver_sql("SELECT worker_pid FROM bus_test_effects")
        )
    assert len(pids) == 3, f"work was not shared by all three workers: {pids}"
    survivors = {w.pid for w in workers[1:]}
    assert all(pids[pid] > 0 for pid in survivors)
    engine.dispose()


async def test_a_second_worker_on_sqlite_is_refused(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    buses = []
    for worker_id in ("first", "second"):
        bus = create_backend(
            BackendConfig(database_url=sqlite_url, worker_id=worker_id, options=BusOptions())
        )
        bus.subscribe(Subscription("orders", RecordingHandler()))
        await bus.start()
        buses.append(bus)
    await buses[0].deliver_until_idle(timeout=5)
    with pytest.raises(ScaleOutNotSupported, match="PostgreSQL"):
        await buses[1].deliver_until_idle(timeout=5)
    for bus in buses:
        await bus.close()
