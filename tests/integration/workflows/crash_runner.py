"""Runs service refunds in child processes that may kill themselves, for the crash test.

``python crash_runner.py PLAN.json`` imports the hub once, then forks one child process per
run of the plan (four at a time). Each child is a fresh process for DBOS (nothing was
launched before the fork): it launches the runtime (executor ``crash-worker``) on its own
SQLite files, starts the workflow unless it exists (a restart finds it pending and DBOS
recovers it), waits for the result and writes it as JSON. A run with ``crash_after`` sets
``RETAILSYNC_WORKFLOW_CRASH_AFTER_STEPS`` so the child SIGKILLs itself at that step boundary.
The plan's phases run one after the other (all kills, then all restarts); the runner prints
``{run name: {"signal": N | null, "code": N | null, "result": {...} | null}}``.

Forking after the imports saves each run the ~2.7 s of importing the hub and its libraries;
the kill and the recovery are real all the same (SIGKILL of a whole process, a new process
that finds the workflow pending in the database).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "workflows"))

from workflow_fakes import Ledger, fake_ports

from retailsync.config import Settings
from retailsync.workflows.runtime import (
    RetrySchedule,
    WorkflowOptions,
    launch_workflows,
    shutdown_workflows,
)
from retailsync.workflows.service import process_result, start_process
from retailsync.workflows.steps import CRASH_AFTER_STEPS_ENV

PARALLEL = 4


async def run_once(run: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(database_url=f"sqlite:///{run['hub_db']}", worker_id="crash-worker")
    options = WorkflowOptions(retry=RetrySchedule(attempts=3, first_delay_seconds=0.01))
    await launch_workflows(settings, fake_ports(Ledger(Path(run["ledger"]))), options)
    try:
        await start_process(run["kind"], run["workflow_id"], run["request"])
        result = await asyncio.wait_for(process_result(run["workflow_id"]), timeout=60)
        return {"state": result["state"], "details": result["details"]}
    finally:
        shutdown_workflows()


def child(run: dict[str, Any]) -> None:
    """The body of a forked child: never returns."""
    code = 0
    try:
        if run.get("crash_after") is not None:
            os.environ[CRASH_AFTER_STEPS_ENV] = str(run["crash_after"])
        else:
            os.environ.pop(CRASH_AFTER_STEPS_ENV, None)
        os.chdir(Path(run["hub_db"]).parent)
        result = asyncio.run(run_once(run))
        Path(run["out"]).write_text(json.dumps(result))
    except BaseException as exc:
        print(f"{run['name']}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_phase(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    outcomes: dict[str, dict[str, Any]] = {}
    pending = list(runs)
    active: dict[int, dict[str, Any]] = {}
    while pending or active:
        while pending and len(active) < PARALLEL:
            run = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                child(run)
            active[pid] = run
        pid, status = os.wait()
        run = active.pop(pid)
        out = Path(run["out"])
        outcomes[run["name"]] = {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "result": json.loads(out.read_text()) if out.exists() else None,
        }
    return outcomes


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    report: dict[str, dict[str, Any]] = {}
    for phase in plan["phases"]:
        report.update(run_phase(phase))
    print(json.dumps(report))


if __name__ == "__main__":
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    main(sys.argv[1])
