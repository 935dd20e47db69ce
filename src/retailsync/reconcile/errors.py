"""Errors raised by reconciliation and the available-to-sell service."""

from __future__ import annotations


class ReconcileError(Exception):
    """Base of every reconciliation error."""


class UnsortedSource(ReconcileError):
    """A source yielded keys out of order; the streaming merge needs ascending keys."""

    def __init__(self, source: str, previous: str, key: str) -> None:
        super().__init__(
            f"source {source!r} yielded key {key!r} after {previous!r}: reconciliation sources "
            f"must yield records in ascending key order (sort the pages, or wrap the source in "
            f"retailsync.reconcile.sources.sorted_by_key)"
        )
        self.source = source
        self.previous = previous
        self.key = key


class UnknownJob(ReconcileError, LookupError):
    """A reconciliation job name that does not exist."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"there is no reconciliation job {name!r}; choose one of {', '.join(sorted(known))}"
        )
        self.name = name


class RunNotFound(ReconcileError, LookupError):
    """A drift report id that is not stored."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no reconciliation run {run_id!r} is stored; list runs with "
            f"GET /v1/admin/reconciliations or `retailsync reconcile runs`"
        )
        self.run_id = run_id


class SourceNotConfigured(ReconcileError):
    """A job needs a source the hub was not given."""

    def __init__(self, job: str, source: str) -> None:
        super().__init__(
            f"reconciliation job {job!r} needs the source {source!r}, which is not configured: "
            f"wire the adapter for that system in bootstrap (adapters['reconcile_sources'])"
        )
        self.job = job
        self.source = source


class RunAlreadyActive(ReconcileError):
    """A run of the same job is still running; two at once would double the corrections."""

    def __init__(self, job: str, run_id: str) -> None:
        super().__init__(
            f"a {job} reconciliation ({run_id}) is still running; wait for it to finish or mark "
            f"it failed before starting another"
        )
        self.job = job
        self.run_id = run_id
