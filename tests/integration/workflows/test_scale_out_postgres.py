"""Scale-out on PostgreSQL: two worker processes share the queues, the ERP rate limit holds
across them, a dead worker's workflows are taken over, and an upgrade carries work in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOSClient
from typer.testing import CliRunner
from workflow_fakes import Ledger

from retailsync.config import Settings
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.workflows.cli import app as workflows_cli
from retailsync.workflows.process import APPROVAL_TOPIC, STATE_EVENT
from retailsync.workflows.runtime import (
    APPLICATION_NAME,
    APPLICATION_VERSION,
    JSON_SERIALIZER,
    PROCESS_QUEUE,
    system_database_url,
)

WORKER = Path(__file__).with_name("pg_worker.py")
REPO = Path(__file__).resolve().parents[3]
ORDER = derive_id(EntityKind.ORDER, "scale", "1")

pytestmark = pytest.mark.slow


class Workers:
    """Worker subprocesses of one test; all stopped at the end."""

    def __init__(self, url: str, ledger: Path) -> None:
        self.url, self.ledger = url, ledger
        self.running: dict[str, subprocess.Popen[str]] = {}

    def start(self, executor: str, version: str = APPLICATION_VERSION, erp_rate: int = 50) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        process = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                self.url,
                str(self.ledger),
                executor,
                version,
                str(erp_rate),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", process.stderr.read() if process.stderr else line
        self.running[executor] = process

    def kill(self, executor: str) -> None:
        process = self.running.pop(executor)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.running.clear()


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Workers, DBOSClient, Ledger]]:
    ledger = Ledger(tmp_path / "world.sqlite")
    ledger.add_order(ORDER, "5000.00", lines={"MUG-1": (200, "25.00")})
    ledger.add_payment("pi_s", "5000.00")
    workers = Workers(postgres_url, tmp_path / "world.sqlite")
    client = DBOSClient(
        system_database_url=system_database_url(Settings(database_url=postgres_url)),
        serializer=JSON_SERIALIZER,
    )
    try:
        yield workers, client, ledger
    finally:
        workers.stop_all()
        client.destroy()


def refund(amount: str = "25.00") -> dict[str, Any]:
    return {
        "order_id": ORDER,
        "payment_ref": "pi_s",
        "amount": {"amount": amount, "currency": "EUR"},
        "lines": [{"sku": "MUG-1", "quantity": 1}],
        "case_ref": "ZD-S",
        "requested_at": "2026-03-05T10:00:00+00:00",
    }


def enqueue(client: DBOSClient, workflow_id: str, body: dict[str, Any]) -> None:
    client.enqueue(
        {
            "queue_name": PROCESS_QUEUE,
            "workflow_name": "service_refund",
            "workflow_id": workflow_id,
            "app_version": APPLICATION_VERSION,
            "application_name": APPLICATION_NAME,
        },
        body,
    )


def wait_for(check: Any, timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(client: DBOSClient, workflow_id: str) -> str | None:
    event = client.get_event(workflow_id, STATE_EVENT, timeout_seconds=0)
    return None if event is None else event["state"]


def test_two_workers_share_the_process_queue_and_hold_the_erp_rate_limit(
    world: tuple[Workers, DBOSClient, Ledger],
) -> None:
    workers, client, ledger = world
    workers.start("worker-1", erp_rate=5)
    workers.start("worker-2", erp_rate=5)
    ids = [f"scale-{n}" for n in range(12)]
    for workflow_id in ids:
        enqueue(client, workflow_id, refund())
    results = [client.retrieve_workflow(w).get_result() for w in ids]
    assert {r["state"] for r in results} == {"completed"}
    # Every refund paid exactly once, whichever worker ran it.
    assert ledger.count("calls", "op = 'issue_refund'") == 12
    rows = client.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    assert {row.executor_id for row in rows} == {"worker-1", "worker-2"}

    erp_starts = sorted(
        row.dequeued_at / 1000
        for row in client.list_workflows(name="erp_call", load_input=False, load_output=False)
        if row.dequeued_at
    )
    assert len(erp_starts) == 12 * 3  # read order, create return, post credit note
    busiest = max(sum(1 for t in erp_starts if s <= t < s + 1.0) for s in erp_starts)
    assert busiest <= 5, f"{busiest} ERP calls started within one second (limit 5)"
    # The limit throttled: 36 calls at 5/s cannot take less than ~7 s.
    assert erp_starts[-1] - erp_starts[0] >= 6.0


def test_takeover_hands_a_dead_workers_workflows_to_a_live_one(
    world: tuple[Workers, DBOSClient, Ledger], postgres_url: str
) -> None:
    workers, client, ledger = world
    workers.start("worker-dead")
    enqueue(client, "big-refund", refund("150.00"))  # above the threshold: waits for a person
    wait_for(lambda: state_of(client, "big-refund") == "awaiting_approval", what="approval wait")
    workers.kill("worker-dead")
    workers.start("worker-live")
    runner = CliRunner()
    env = {"RETAILSYNC_DATABASE_URL": postgres_url}
    refused = runner.invoke(workflows_cli, ["takeover", "worker-dead"], env=env)
    assert refused.exit_code == 2
    done = runner.invoke(workflows_cli, ["takeover", "worker-dead", "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert "Handed 1 workflow(s)" in done.output
    wait_for(
        lambda: client.retrieve_workflow("big-refund").get_status().executor_id == "worker-live",
        what="the live worker to own the refund",
    )
    client.send("big-refund", {"decision": "approve", "by": "lead"}, topic=APPROVAL_TOPIC)
    result = client.retrieve_workflow("big-refund").get_result()
    assert result["state"] == "completed"
    assert ledger.count("calls", "op = 'issue_refund'") == 1
    assert ledger.count("calls", "op = 'post_credit_note'") == 1


def test_an_upgrade_carries_in_flight_workflows_to_the_new_version(
    world: tuple[Workers, DBOSClient, Ledger], postgres_url: str
) -> None:
    """docs/workflows.md, "Upgrading": stop the old workers, ``workflows upgrade --from A
    --to B --yes``, start the new ones; the refund started under A completes under B."""
    workers, client, ledger = world
    workers.start("worker-a", version="release-a")
    client.enqueue(
        {
            "queue_name": PROCESS_QUEUE,
            "workflow_name": "service_refund",
            "workflow_id": "refund-in-flight",
            "app_version": "release-a",
            "application_name": APPLICATION_NAME,
        },
        refund("150.00"),
    )
    wait_for(lambda: state_of(client, "refund-in-flight") == "awaiting_approval", what="wait")
    workers.stop_all()  # the old release is shut down (a deploy)

    # Without the upgrade step the new release leaves the old version's work alone.
    workers.start("worker-a", version="release-b")
    time.sleep(2)
    status = client.retrieve_workflow("refund-in-flight").get_status()
    assert (status.status, status.app_version) == ("PENDING", "release-a")
    workers.stop_all()

    moved = CliRunner().invoke(
        workflows_cli,
        ["upgrade", "--from", "release-a", "--to", "release-b", "--yes"],
        env={"RETAILSYNC_DATABASE_URL": postgres_url},
    )
    assert moved.exit_code == 0 and "Moved 1 in-flight" in moved.output, moved.output
    workers.start("worker-a", version="release-b")
    client.send("refund-in-flight", {"decision": "approve", "by": "lead"}, topic=APPROVAL_TOPIC)
    result = client.retrieve_workflow("refund-in-flight").get_result()
    assert result["state"] == "completed"
    assert client.retrieve_workflow("refund-in-flight").get_status().app_version == "release-b"
    assert ledger.count("calls", "op = 'issue_refund'") == 1
