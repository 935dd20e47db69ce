"""Fault test: SIGKILL the worker (and the publisher) mid-batch, several times.

Nothing acknowledged is lost, no handler effect happens twice, each key keeps its order.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailsync.bus.testkit import EFFECTS_TABLE, ensure_effects_table
from retailsync.db import create_engine_for, upgrade_database

SCRIPT = str(Path(__file__).with_name("bus_process.py"))
EVENTS = 600
KEYS = 24


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, SCRIPT, *args], env=env, stdout=subprocess.PIPE, text=True
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", f"worker did not start (exit code {process.poll()})"


def effects(engine: sa.Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        # handling order: SQLite's rowid grows in commit order (one writer); on PostgreSQL
        # ctid does not (several workers insert into different pages, and pages freed by a
        # killed worker's aborted batch are reused), so scale-out tables carry a serial column
        order = "rowid" if engine.dialect.name == "sqlite" else "handled_seq"
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                sa.text(
                    f"SELECT partition_key, event_id, position FROM {EFFECTS_TABLE} "
                    f"ORDER BY {order}"
                )
            )
        ]


def assert_once_and_in_order(rows: list[tuple[str, str, int]], acked: list[str]) -> None:
    ids = [event_id for _, event_id, _ in rows]
    assert len(ids) == len(set(ids)), "a handler effect happened twice"
    missing = set(acked) - set(ids)
    assert not missing, (
        f"{len(missing)} acknowledged events never handled, e.g. {sorted(missing)[:3]}"
    )
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, _, position in rows:
        by_key[key].append(position)
    for key, positions in by_key.items():
        assert positions == sorted(positions), f"order broken for {key}"


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_and_applies_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    ensure_effects_table(engine)
    ack_file = tmp_path / "acks.txt"
    rng = random.Random(7)

    publisher = spawn("publish", url, str(EVENTS), str(KEYS), str(ack_file))
    kills = 0
    at_kill: list[int] = []
    publisher_killed = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        worker = spawn("worker", url, "crash-worker", "2.0", "0.005")  # >= 3 s of handling
        wait_ready(worker)
        if kills < 4:
            while kills == 0 and not effects(engine) and time.monotonic() < deadline:
                time.sleep(0.02)  # the first kill lands after the first committed batch
            time.sleep(rng.uniform(0.3, 0.8))
            if not publisher_killed and kills == 1:
                publisher.send_signal(signal.SIGKILL)  # the publisher dies mid-publish too
                publisher.wait()
                publisher_killed = True
            before = len(effects(engine))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            at_kill.append(len(effects(engine)))
            assert at_kill[-1] >= before
            continue
        if publisher_killed:  # finish publishing what the killed publisher had not acked
            rest = spawn("publish", url, str(EVENTS), str(KEYS), str(ack_file))
            assert rest.wait(timeout=60) == 0
        else:
            assert publisher.wait(timeout=60) == 0
        acked = [line for line in ack_file.read_text().splitlines() if line]
        while time.monotonic() < deadline and len(effects(engine)) < len(set(acked)):
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        break
    rows = effects(engine)
    acked = [line for line in ack_file.read_text().splitlines() if line]
    assert kills == 4
    assert at_kill[0] > 0 and at_kill[-1] < EVENTS, f"kills did not land mid-run: {at_kill}"
    assert len(set(acked)) == EVENTS
    assert_once_and_in_order(rows, acked)
    assert len(rows) == EVENTS
    engine.dispose()
