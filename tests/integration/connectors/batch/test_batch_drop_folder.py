"""The drop-folder watcher on a real database: good rows published, bad rows reported, once."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailsync.connectors.batch.config import BatchSettings
from retailsync.connectors.batch.tables import batch_files_table
from retailsync.connectors.batch.watcher import DropFolderWatcher, RowError
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent

INVENTORY = """sku,location,on_hand,as_of
SKU-1,WH1,12,2025-03-01T08:00:00Z
SKU-2,WH1,not-a-number,2025-03-01T08:00:00Z
SKU-3,WH1,7,2025-03-01T08:00:00Z
SKU-4,WH1,5
,WH1,3,2025-03-01T08:00:00Z
SKU-5,WH2,-2,2025-03-01T08:00:00+02:00
"""


class ListPublisher:
    """Keeps what it is given, like a bus that never loses or reorders."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        self.events.extend(events)


def watcher_for(url: str, folder: Path) -> tuple[DropFolderWatcher, ListPublisher, list[RowError]]:
    upgrade_database(url)
    folder.mkdir(parents=True, exist_ok=True)
    publisher = ListPublisher()
    errors: list[RowError] = []

    async def on_row_error(error: RowError) -> None:
        errors.append(error)

    watcher = DropFolderWatcher(
        BatchSettings(drop_folder=folder, settle_seconds=0, poll_interval_seconds=0.05),
        engine=create_engine_for(url),
        publisher=publisher,
        on_row_error=on_row_error,
    )
    return watcher, publisher, errors


async def check_good_and_bad_rows(url: str, folder: Path) -> None:
    watcher, publisher, errors = watcher_for(url, folder)
    (folder / "stock-2025-03-01.csv").write_text(INVENTORY)
    [outcome] = await watcher.process_folder()

    assert not outcome.duplicate and outcome.published == 3
    assert [e.partitionkey for e in publisher.events] == ["SKU-1@WH1", "SKU-3@WH1", "SKU-5@WH2"]
    assert [(e.row_number, e.reason.split(" ")[0]) for e in errors] == [
        (3, "on_hand"),
        (5, "expected"),
        (6, "sku"),
    ]
    processed = folder / "processed"
    assert (processed / "stock-2025-03-01.csv").exists()
    assert not (folder / "stock-2025-03-01.csv").exists()
    with (processed / "stock-2025-03-01.result.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row_number"], r["status"]) for r in rows] == [
        ("2", "ok"),
        ("3", "error"),
        ("4", "ok"),
        ("5", "error"),
        ("6", "error"),
        ("7", "ok"),
    ]
    assert "not a whole number" in rows[1]["reason"]

    # The same file dropped again changes nothing: no events, no errors, no new ledger row.
    (folder / "stock-again.csv").write_text(INVENTORY)
    [again] = await watcher.process_folder()
    assert again.duplicate
    assert len(publisher.events) == 3 and len(errors) == 3
    assert (processed / "duplicates" / "stock-again.csv").exists()
    assert not (processed / "stock-again.result.csv").exists()
    engine = create_engine_for(url)
    with engine.connect() as connection:
        ledger = connection.execute(sa.select(batch_files_table)).all()
    engine.dispose()
    assert [(r.file_name, r.rows_ok, r.rows_failed) for r in ledger] == [
        ("stock-2025-03-01.csv", 3, 3)
    ]


async def test_good_rows_applied_bad_rows_reported_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    await check_good_and_bad_rows(sqlite_url, tmp_path / "drop")


@pytest.mark.postgres
async def test_good_rows_applied_bad_rows_reported_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    await check_good_and_bad_rows(postgres_url, tmp_path / "drop")


async def test_order_status_file_and_unknown_header(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    watcher, publisher, errors = watcher_for(sqlite_url, folder)
    (folder / "a-status.csv").write_text(
        "order_ref,status,changed_at\nSO-1,shipped,2025-03-01T09:00:00Z\nSO-2,teleported,2025-03-01T09:00:00Z\n"
    )
    (folder / "b-unknown.csv").write_text("foo,bar\n1,2\n")
    (folder / "notes.txt").write_text("ignored")
    outcomes = await watcher.process_folder()
    assert [o.file_name for o in outcomes] == ["a-status.csv", "b-unknown.csv"]
    assert [e.type for e in publisher.events] == ["retailsync.order.status_changed"]
    assert [(e.file_name, e.row_number) for e in errors] == [
        ("a-status.csv", 3),
        ("b-unknown.csv", 1),
    ]
    assert (folder / "notes.txt").exists()


async def test_polling_loop_picks_up_new_files(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    watcher, publisher, _ = watcher_for(sqlite_url, folder)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(0.1)
    (folder / "late.csv").write_text(
        "sku,location,on_hand,as_of\nSKU-9,WH1,1,2025-03-01T08:00:00Z\n"
    )
    for _ in range(50):
        if publisher.events:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert [e.partitionkey for e in publisher.events] == ["SKU-9@WH1"]
