"""``retailsync replay`` and ``retailsync exceptions`` against a SQLite database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retailsync.bus import runtime
from retailsync.bus.backend import RetryPolicy, Subscription
from retailsync.bus.cli import app
from retailsync.bus.testkit import RecordingHandler, keyed_event
from retailsync.config import Settings
from retailsync.db import upgrade_database
from retailsync.resilience.errors import UnknownReference


@pytest.fixture
def handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingHandler]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("RETAILSYNC_DATABASE_URL", url)
    upgrade_database(url)
    recorder = RecordingHandler(
        fail=lambda ev, attempt: UnknownReference("no SKU") if ev.id.startswith("bad") else None
    )
    runtime.register(Subscription("order-view", recorder, retry=RetryPolicy(max_attempts=1)))

    def seed() -> None:
        async def go() -> None:
            bus = runtime.create_bus(Settings())
            await bus.start()
            await bus.publish([keyed_event("o1", n) for n in range(3)] + [keyed_event("bad", 0)])
            await bus.deliver_until_idle(timeout=10)
            await bus.close()

        asyncio.run(go())

    seed()
    yield recorder
    runtime._registry.pop("order-view", None)


def test_replay_and_exception_commands(handler: RecordingHandler) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["replay", "order-view", "--key", "o1", "--force"])
    assert result.exit_code == 0, result.output
    assert "3 selected, 3 delivered" in result.output
    assert [e.id for e in handler.handled].count("o1-0") == 2

    listed = runner.invoke(app, ["exceptions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)
    assert (entry["event_id"], entry["classification"]) == ("bad-0", "business")

    refused = runner.invoke(app, ["exceptions", "discard", "--reason", "x"])
    assert refused.exit_code == 2
    done = runner.invoke(
        app, ["exceptions", "discard", "--reason", "test data", "--actor", "ops", "--system", "erp"]
    )
    assert "0 changed" in done.output  # no entry has system erp
    done = runner.invoke(
        app, ["exceptions", "discard", str(entry["id"]), "--reason", "test data", "--actor", "ops"]
    )
    assert done.exit_code == 0 and "1 changed" in done.output
    listed = runner.invoke(app, ["exceptions", "list", "--json"])
    assert json.loads(listed.output) == []
