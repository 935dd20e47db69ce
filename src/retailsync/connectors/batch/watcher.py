"""The drop-folder watcher: each file processed once, good rows published, bad rows reported.

For each settled ``*.csv`` file in the drop folder, one pass:

1. hash the content; a hash already in ``batch_files`` is a file seen before: it is moved to
   ``processed/duplicates/`` and nothing else happens;
2. map every row; good rows become canonical events, bad rows become :class:`RowError`;
3. publish the good rows' events (never held back by bad rows) and hand each bad row to
   ``on_row_error`` (the exception queue);
4. write ``<name>.result.csv`` (``row_number,status,reason`` for every data row; the row
   number is the line in the file, the header being line 1), record the hash, and move the
   file and its result into ``processed/``.

A crash between 3 and 4 leaves the file in place; the next pass publishes the same event ids
(the bus stores them once) and reports the same errors with the same ``error_id``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import inspect
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.connectors.batch.config import BatchSettings
from retailsync.connectors.batch.errors import RowRejected
from retailsync.connectors.batch.mapping import FileKind, kind_of_header, row_to_event
from retailsync.connectors.batch.tables import batch_files_table
from retailsync.domain.events import CloudEvent
from retailsync.ports.publisher import EventPublisher

RESULT_SUFFIX = ".result.csv"
DUPLICATES_FOLDER = "duplicates"
PUBLISH_CHUNK = 500


@dataclass(frozen=True)
class RowError:
    """One row that could not become an event, for the exception queue."""

    error_id: str  # "<content sha256>:<row number>": stable across re-runs
    file_name: str
    row_number: int
    reason: str
    raw: str


@dataclass
class FileOutcome:
    """What one pass did with one file."""

    file_name: str
    content_sha256: str
    duplicate: bool = False
    kind: FileKind | None = None
    published: int = 0
    errors: list[RowError] = field(default_factory=list)
    result_file: Path | None = None


OnRowError = Callable[[RowError], Awaitable[None] | None]


class DropFolderWatcher:
    """Polls the drop folder; :meth:`process_folder` is one pass, :meth:`run` loops."""

    def __init__(
        self,
        settings: BatchSettings,
        *,
        engine: Engine,
        publisher: EventPublisher,
        on_row_error: OnRowError,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._publisher = publisher
        self._on_row_error = on_row_error

    async def run(self, stop: asyncio.Event) -> None:
        """Process the folder every ``poll_interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            await self.process_folder()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._settings.poll_interval_seconds)
            except TimeoutError:
                continue

    async def process_folder(self) -> list[FileOutcome]:
        """One pass over the drop folder, oldest file first."""
        outcomes = []
        for path in await asyncio.to_thread(self._ready_files):
            outcomes.append(await self.process_file(path))
        return outcomes

    def _ready_files(self) -> list[Path]:
        folder = self._settings.drop_folder
        folder.mkdir(parents=True, exist_ok=True)
        settled_before = time.time() - self._settings.settle_seconds
        ready = [
            path
            for path in folder.iterdir()
            if path.is_file()
            and path.suffix.lower() == ".csv"
            and not path.name.endswith(RESULT_SUFFIX)
            and not path.name.startswith(".")
            and path.stat().st_mtime <= settled_before
        ]
        return sorted(ready, key=lambda p: (p.stat().st_mtime, p.name))

    async def process_file(self, path: Path) -> FileOutcome:
        """Process one file (see the module docstring for the steps)."""
        content = await asyncio.to_thread(path.read_bytes)
        digest = hashlib.sha256(content).hexdigest()
        outcome = FileOutcome(file_name=path.name, content_sha256=digest)
        if await asyncio.to_thread(self._already_processed, digest):
            outcome.duplicate = True
            await asyncio.to_thread(
                self._move, path, self._settings.processed_folder / DUPLICATES_FOLDER
            )
            return outcome
        events, results = self._map_rows(path.name, digest, content, outcome)
        for start in range(0, len(events), PUBLISH_CHUNK):
            await self._publisher.publish(events[start : start + PUBLISH_CHUNK])
        outcome.published = len(events)
        for error in outcome.errors:
            handled = self._on_row_error(error)
            if inspect.isawaitable(handled):
                await handled
        outcome.result_file = await asyncio.to_thread(self._finish, path, outcome, results)
        return outcome

    def _finish(
        self, path: Path, outcome: FileOutcome, results: list[tuple[int, str, str]]
    ) -> Path:
        """Write the result file, record the hash, move both into ``processed/``."""
        result_path = path.with_name(path.stem + RESULT_SUFFIX)
        _write_result(result_path, results)
        self._record(path.name, outcome.content_sha256, outcome, result_path, len(results))
        processed = self._settings.processed_folder
        moved_result = self._move(result_path, processed)
        self._move(path, processed)
        return moved_result

    def _map_rows(
        self, name: str, digest: str, content: bytes, outcome: FileOutcome
    ) -> tuple[list[CloudEvent], list[tuple[int, str, str]]]:
        results: list[tuple[int, str, str]] = []
        events: list[CloudEvent] = []

        def reject(row_number: int, reason: str, raw: str) -> None:
            outcome.errors.append(RowError(f"{digest}:{row_number}", name, row_number, reason, raw))
            results.append((row_number, "error", reason))

        if len(content) > self._settings.max_file_bytes:
            reject(0, f"file is larger than {self._settings.max_file_bytes} bytes", "")
            return events, results
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            reject(0, f"file is not UTF-8 text: {exc}", "")
            return events, results
        lines = text.splitlines()
        reader = csv.reader(lines)
        try:
            header = next(reader)
            kind = kind_of_header(header)
        except StopIteration:
            reject(1, "file is empty: expected a header line", "")
            return events, results
        except RowRejected as exc:
            reject(1, str(exc), lines[0] if lines else "")
            return events, results
        outcome.kind = kind
        columns = [column.strip().lower() for column in header]
        for row_number, values in enumerate(reader, start=2):
            raw = lines[row_number - 1] if row_number - 1 < len(lines) else ""
            if not any(value.strip() for value in values):
                continue  # blank line
            if len(values) != len(columns):
                reject(
                    row_number,
                    f"expected {len(columns)} columns ({','.join(columns)}), got {len(values)}",
                    raw,
                )
                continue
            try:
                event = row_to_event(kind, dict(zip(columns, values, strict=True)), self._settings)
            except RowRejected as exc:
                reject(row_number, str(exc), raw)
                continue
            events.append(event)
            results.append((row_number, "ok", ""))
        return events, results

    def _already_processed(self, digest: str) -> bool:
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(batch_files_table.c.id).where(
                    batch_files_table.c.content_sha256 == digest
                )
            ).first()
        return found is not None

    def _record(
        self, name: str, digest: str, outcome: FileOutcome, result: Path, rows: int
    ) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                batch_files_table.insert().values(
                    content_sha256=digest,
                    file_name=name,
                    kind=outcome.kind.value if outcome.kind else "unknown",
                    rows_total=rows,
                    rows_ok=outcome.published,
                    rows_failed=len(outcome.errors),
                    result_file=result.name,
                    processed_at=datetime.now(UTC),
                )
            )

    @staticmethod
    def _move(path: Path, folder: Path) -> Path:
        """Move ``path`` into ``folder``; an existing name gets a time-stamped suffix."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = folder / f"{path.stem}.{stamp}{path.suffix}"
        return path.replace(target)


def _write_result(path: Path, results: list[tuple[int, str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("row_number", "status", "reason"))
    writer.writerows(sorted(results))
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    temporary.replace(path)
