"""Kill -9 at every step boundary of a service refund, restart, and count the money.

Each run starts a refund in a subprocess that kills itself (SIGKILL) once N steps are
checkpointed, then restarts the process under the same executor id; DBOS recovers the pending
workflow, re-runs at most the interrupted step, and the idempotency keys absorb the repeat.
Every run must end with exactly one credit note and exactly one refund.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from workflow_fakes import Ledger

from retailsync.domain.identifiers import EntityKind, derive_id

RUNNER = Path(__file__).with_name("crash_runner.py")
REPO = Path(__file__).resolve().parents[3]
STEPS_OF_AN_AUTO_APPROVED_REFUND = 11


def refund_process(
    tmp: Path, workflow_id: str, order: str, payment: str, crash_after: int | None
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS", None)
    if crash_after is not None:
        env["RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS"] = str(crash_after)
    return subprocess.Popen(
        [
            sys.executable,
            str(RUNNER),
            str(tmp / "hub.sqlite"),
            str(tmp / "world.sqlite"),
            workflow_id,
            order,
            payment,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
    )


def run_all(runs: list[tuple[int, Path, int | None]]) -> dict[int, tuple[int, str, str]]:
    """Run the processes four at a time (they mostly wait on disk and timers)."""
    results: dict[int, tuple[int, str, str]] = {}
    for batch_start in range(0, len(runs), 4):
        batch = [
            (n, refund_process(tmp, f"refund-crash-{n}", ORDER, "pi_1", crash_after))
            for n, tmp, crash_after in runs[batch_start : batch_start + 4]
        ]
        for n, process in batch:
            out, err = process.communicate(timeout=120)
            results[n] = (process.returncode, out, err)
    return results


ORDER = derive_id(EntityKind.ORDER, "crash", "1")


def test_sigkill_at_every_step_boundary_leaves_one_credit_note_and_one_refund(
    tmp_path: Path,
) -> None:
    boundaries = list(range(STEPS_OF_AN_AUTO_APPROVED_REFUND + 1))
    worlds: dict[int, tuple[Path, Ledger]] = {}
    for n in boundaries:
        directory = tmp_path / f"boundary-{n}"
        directory.mkdir()
        ledger = Ledger(directory / "world.sqlite")
        ledger.add_order(ORDER, "100.00", lines={"MUG-1": (2, "25.00")})
        ledger.add_payment("pi_1", "100.00")
        worlds[n] = (directory, ledger)

    killed = run_all([(n, worlds[n][0], n) for n in boundaries])
    for n in boundaries:
        code, _out, err = killed[n]
        assert code == -signal.SIGKILL, (n, code, err[-2000:])

    restarted = run_all([(n, worlds[n][0], None) for n in boundaries])
    for n in boundaries:
        code, out, err = restarted[n]
        assert code == 0, (n, err[-3000:])
        result = json.loads(out.strip().splitlines()[-1])
        assert result["state"] == "completed", (n, result)
        ledger = worlds[n][1]
        assert ledger.credit_notes() == 1, n
        assert [r["amount"] for r in ledger.refunds()] == ["25.00"], n
        # No mutating call reached an outside system twice for the same effect.
        assert ledger.count("calls", "op = 'issue_refund'") == 1, n
        assert ledger.count("calls", "op = 'post_credit_note'") == 1, n
        assert ledger.count("notes") == 1, n
