"""Scheduled reconciliations: a background job that runs each job at its configured interval.

The schedule is ``reconcile.schedule`` (:class:`~retailsync.reconcile.policy.ReconcileSchedule`,
e.g. ``RETAILSYNC_RECONCILE__SCHEDULE__INTERVALS='{"inventory": 3600, "orders": 900}'``). A
job whose run is still going when it is due again is skipped (the engine refuses a second run
of the same scope), a run that fails is recorded as failed on its report and retried at the
next interval; the loop itself never stops on a failure. Runs use the wired sources,
publisher, ticket sink and policy, with ``trigger="schedule"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from retailsync.observability.logging import get_logger
from retailsync.reconcile import wiring
from retailsync.reconcile.engine import JOBS, run_reconciliation
from retailsync.reconcile.errors import RunAlreadyActive
from retailsync.reconcile.policy import ReconcileSchedule
from retailsync.reconcile.store import ReportStore, RunSummary

__all__ = ["ReconcileScheduler", "scheduled_reconciliations"]

_log = get_logger("retailsync.reconcile.schedule")


class ReconcileScheduler:
    """Runs the due reconciliations of ``schedule`` until ``stop`` is set."""

    def __init__(
        self,
        hub: Any,
        schedule: ReconcileSchedule | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.schedule = schedule or wiring.policy(hub).schedule
        self.clock = clock
        self.completed: list[RunSummary] = []
        self.failures: list[tuple[str, str]] = []

    async def run_job(self, job: str) -> RunSummary | None:
        """One scheduled run of ``job``; None when it could not run (logged, never raised)."""
        hub = self.hub
        factory = wiring.sources_factory(hub)
        if factory is None:
            self.failures.append((job, "no reconcile_sources wired"))
            _log.warning("scheduled reconciliation skipped: no sources wired", job=job)
            return None
        try:
            summary = await run_reconciliation(
                JOBS[job],
                factory(job),
                store=ReportStore(hub.engine),
                publisher=wiring.publisher(hub),
                open_exception=wiring.tickets(hub),
                policy=wiring.policy(hub),
                trigger="schedule",
                dry_run=self.schedule.dry_run,
            )
        except RunAlreadyActive as exc:
            self.failures.append((job, str(exc)))
            _log.info("scheduled reconciliation skipped: still running", job=job)
            return None
        except Exception as exc:  # recorded on the run as failed; try at the next interval
            self.failures.append((job, f"{type(exc).__name__}: {exc}"))
            _log.warning("scheduled reconciliation failed", job=job, error=str(exc))
            return None
        self.completed.append(summary)
        _log.info(
            "scheduled reconciliation finished",
            job=job,
            run_id=summary.id,
            drifts=summary.drift_count,
            corrections=summary.corrections,
            exceptions=summary.exceptions,
        )
        return summary

    async def run(self, stop: asyncio.Event) -> None:
        """The background job: run each scheduled job when due, until ``stop``."""
        intervals = dict(self.schedule.intervals)
        if not intervals:
            return
        if await _wait(stop, self.schedule.first_delay_seconds):
            return
        start = self.clock()
        due = dict.fromkeys(intervals, start)
        while not stop.is_set():
            now = self.clock()
            for job in sorted(intervals):
                if due[job] <= now and not stop.is_set():
                    await self.run_job(job)
                    # The next run is one interval after this one was due (no drift, no
                    # burst of catch-up runs after a long one).
                    due[job] = max(due[job] + intervals[job], self.clock())
            if await _wait(stop, max(0.0, min(due.values()) - self.clock())):
                return


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


def scheduled_reconciliations(
    hub: Any,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """The ``hub.background_jobs["reconcile-schedule"]`` job (a no-op with no intervals)."""
    return ReconcileScheduler(hub).run
