"""Kill -9 at every step boundary of a service refund, restart, and count the money.

Each run starts a refund in a process that kills itself (SIGKILL) once N steps are
checkpointed, then restarts it in a new process under the same executor id; DBOS recovers the
pending workflow, re-runs at most the interrupted step, and the idempotency keys absorb the
repeat. Every run must end with exactly one credit note and exactly one refund. The processes
are forked from one runner that imported the hub once (see ``crash_runner.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id

RUNNER = Path(__file__).with_name("crash_runner.py")
REPO = Path(__file__).resolve().parents[3]
STEPS_OF_AN_AUTO_APPROVED_REFUND = 11
ORDER = derive_id(EntityKind.ORDER, "crash", "1")
REFUND = {
    "order_id": ORDER,
    "payment_ref": "pi_1",
    "amount": {"amount": "25.00", "currency": "EUR"},
    "lines": [{"sku": "MUG-1", "quantity": 1}],
    "case_ref": "ZD-1",
    "requested_by": "agent-bob",
    "requested_at": "2026-03-05T10:00:00+00:00",
}


def run_plan(tmp: Path, phases: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    plan = tmp / "plan.json"
    plan.write_text(json.dumps({"phases": phases}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS", None)
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(plan)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_sigkill_at_every_step_boundary_leaves_one_credit_note_and_one_refund(
    tmp_path: Path,
) -> None:
    boundaries = list(range(STEPS_OF_AN_AUTO_APPROVED_REFUND + 1))
    ledgers: dict[int, Ledger] = {}
    kills, restarts = [], []
    for n in boundaries:
        directory = tmp_path / f"boundary-{n}"
        directory.mkdir()
        ledger = Ledger(directory / "world.sqlite")
        ledger.add_order(ORDER, "100.00", lines={"MUG-1": (2, "25.00")})
        ledger.add_payment("pi_1", "100.00")
        ledgers[n] = ledger
        run = {
            "kind": "refunds",
            "workflow_id": f"refund-crash-{n}",
            "request": REFUND,
            "hub_db": str(directory / "hub.sqlite"),
            "ledger": str(directory / "world.sqlite"),
        }
        kills.append({**run, "name": f"kill-{n}", "crash_after": n, "out": str(directory / "a")})
        restarts.append({**run, "name": f"restart-{n}", "out": str(directory / "b")})

    report = run_plan(tmp_path, [kills, restarts])
    for n in boundaries:
        killed = report[f"kill-{n}"]
        assert killed["signal"] == signal.SIGKILL, (n, killed)
        assert killed["result"] is None, n
        restarted = report[f"restart-{n}"]
        assert restarted["code"] == 0, (n, restarted)
        result = restarted["result"]
        assert result["state"] == "completed", (n, result)
        ledger = ledgers[n]
        assert ledger.credit_notes() == 1, n
        assert [r["amount"] for r in ledger.refunds()] == ["25.00"], n
        # No mutating call reached an outside system twice for the same effect.
        assert ledger.count("calls", "op = 'issue_refund'") == 1, n
        assert ledger.count("calls", "op = 'post_credit_note'") == 1, n
        assert ledger.count("notes") == 1, n
