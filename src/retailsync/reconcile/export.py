"""Drift reports as CSV and JSON, produced a row at a time (any size, bounded memory)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from retailsync.reconcile.store import ReportStore

__all__ = ["CSV_COLUMNS", "iter_csv", "iter_json"]

CSV_COLUMNS = (
    "seq",
    "kind",
    "key",
    "action",
    "owner",
    "target",
    "expected",
    "observed",
    "detail",
    "correction_event_id",
    "exception_id",
)


def _line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def iter_csv(store: ReportStore, run_id: str) -> Iterator[str]:
    """The run's drift rows as CSV lines (header first); ``observed`` as ``system=value;...``."""
    rows = store.iter_drifts(run_id)
    yield _line(list(CSV_COLUMNS))
    for row in rows:
        observed = ";".join(f"{system}={value}" for system, value in sorted(row.observed.items()))
        yield _line(
            [
                row.seq,
                row.kind,
                row.key,
                row.action,
                row.owner,
                row.target or "",
                row.expected or "",
                observed,
                row.detail,
                row.correction_event_id or "",
                row.exception_id or "",
            ]
        )


def iter_json(store: ReportStore, run_id: str) -> Iterator[str]:
    """``{"run": {...}, "drifts": [...]}`` in chunks; the run header carries counts by kind."""
    run = store.get_run(run_id)
    yield '{"run": ' + run.model_dump_json() + ', "drifts": ['
    first = True
    for row in store.iter_drifts(run_id):
        yield ("" if first else ",") + "\n" + json.dumps(row.as_dict(), sort_keys=True)
        first = False
    yield "\n]}\n"
