"""GET /v1/experience/availability, POST/GET /v1/admin/reconciliations, and the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.scopes import Scope
from retailsync.bootstrap import Hub, bootstrap
from retailsync.bus import tables as bus_tables
from retailsync.config import Settings, get_settings
from retailsync.reconcile.api import router
from retailsync.reconcile.availability import AllocationReport, AvailabilitySettings, StockReport
from retailsync.reconcile.cli import app as cli_app
from retailsync.reconcile.corrections import CORRECTION_SOURCE
from retailsync.reconcile.merge import pages_of
from retailsync.reconcile.projection import AvailabilityProjection
from retailsync.reconcile.records import PublishedLevel, StockFigure
from retailsync.reconcile.store import ReportStore
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
    ShopifySandbox,
    create_shopify_sandbox,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = bootstrap(Settings(database_url=sqlite_url), configure_logs=False)
    yield hub
    hub.close()


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    app = create_app(hub)
    app.include_router(router, prefix="/v1")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _key(hub: Hub, *scopes: str) -> dict[str, str]:
    with hub.engine.begin() as connection:
        issued = create_api_client(
            connection,
            name="reconcile test",
            scopes=[Scope(s) for s in scopes],
            pepper=api_key_pepper(hub.settings.secret_key),
            actor="test",
            correlation_id=None,
        )
    return {"X-API-Key": issued.key}


def test_availability_per_location_and_channel(hub: Hub, client: TestClient) -> None:
    settings = AvailabilitySettings.model_validate({"channels": {"web": {"locations": ["DC1"]}}})
    hub.adapters["availability_settings"] = settings
    projection = AvailabilityProjection(settings)
    with hub.engine.begin() as connection:
        projection.apply_fact(connection, StockReport("SKU-1", "DC1", 30, 4, 6, T0))
        projection.apply_fact(connection, AllocationReport("SKU-1", "DC1", 2, T0))
    reader = _key(hub, "experience:read")
    answer = client.get("/v1/experience/availability", params={"sku": "SKU-1"}, headers=reader)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == 30
    assert body["locations"][0] | {"updated_at": None} == {
        "location": "DC1",
        "on_hand": 30,
        "reserved": 4,
        "allocated": 2,
        "in_transit": 6,
        "available": 30,
        "updated_at": None,
    }
    assert body["channels"][0]["channel"] == "web"
    missing = client.get("/v1/experience/availability", params={"sku": "NOPE"}, headers=reader)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong = client.get(
        "/v1/experience/availability", params={"sku": "SKU-1"}, headers=_key(hub, "system:read")
    )
    assert wrong.status_code == 403


def test_start_a_run_and_download_its_report(hub: Hub, client: TestClient) -> None:
    def sources(job: str) -> dict[str, object]:
        erp = [StockFigure.of("SKU-1", "DC1", 10), StockFigure.of("SKU-2", "DC1", 5)]
        wms = [StockFigure.of("SKU-1", "DC1", 9), StockFigure.of("SKU-2", "DC1", 5)]
        shop = [PublishedLevel.of("SKU-1", "DC1", 10), PublishedLevel.of("SKU-2", "DC1", 5)]
        return {"erp": pages_of(erp), "wms": pages_of(wms), "storefront": pages_of(shop)}

    admin = _key(hub, "admin")
    refused = client.post(
        "/v1/admin/reconciliations",
        json={"job": "inventory"},
        headers=admin | {"Idempotency-Key": "first"},
    )
    assert refused.status_code == 409  # no sources wired yet
    hub.adapters["reconcile_sources"] = sources
    started = client.post(
        "/v1/admin/reconciliations",
        json={"job": "inventory", "dry_run": True},
        headers=admin | {"Idempotency-Key": "second"},
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 20
    while True:
        run = client.get(f"/v1/admin/reconciliations/{run_id}", headers=admin).json()
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "completed"
    assert run["counts"] == {"stock.on_hand_mismatch": 1, "stock.storefront_level_mismatch": 1}
    csv_text = client.get(f"/v1/admin/reconciliations/{run_id}/report.csv", headers=admin).text
    assert csv_text.splitlines()[0].startswith("seq,kind,key,action")
    assert len(csv_text.splitlines()) == 3
    report = client.get(f"/v1/admin/reconciliations/{run_id}/report.json", headers=admin).json()
    assert report["run"]["drift_count"] == 2
    listed = client.get("/v1/admin/reconciliations", headers=admin).json()
    assert [r["id"] for r in listed] == [run_id]
    assert client.get("/v1/admin/reconciliations/rcn_nope", headers=admin).status_code == 404
    assert (
        client.get("/v1/admin/reconciliations", headers=_key(hub, "experience:read")).status_code
        == 403
    )


def test_cli_reconciles_csv_exports_and_exports_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAILSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.sqlite'}")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    (tmp_path / "erp.csv").write_text(
        "sku,location,on_hand,reserved,allocated,in_transit\nA,DC1,10,0,0,0\nB,DC1,4,0,0,0\n"
    )
    (tmp_path / "wms.csv").write_text(
        "sku,location,on_hand,reserved,allocated,in_transit\nA,DC1,10,0,0,0\nB,DC1,3,0,0,0\n"
    )
    (tmp_path / "shop.csv").write_text("sku,location,available\nA,DC1,10\nB,DC1,4\n")
    runner = CliRunner()
    try:
        result = runner.invoke(
            cli_app,
            [
                "inventory",
                "--erp",
                str(tmp_path / "erp.csv"),
                "--wms",
                str(tmp_path / "wms.csv"),
                "--storefront",
                str(tmp_path / "shop.csv"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "stock.on_hand_mismatch" in result.output
        listed = runner.invoke(cli_app, ["runs"])
        assert listed.exit_code == 0 and "inventory" in listed.output
        run_id = next(w for w in listed.output.split() if w.startswith("rcn_"))
        out = tmp_path / "report.json"
        exported = runner.invoke(
            cli_app, ["report", run_id, "--format", "json", "--output", str(out)]
        )
        assert exported.exit_code == 0, exported.output
        assert '"stock.on_hand_mismatch"' in out.read_text()
        missing = runner.invoke(cli_app, ["orders"])
        assert missing.exit_code == 2
    finally:
        get_settings.cache_clear()


def _report_store(url: str) -> ReportStore:
    return ReportStore(sa.create_engine(url, poolclass=sa.NullPool))


def _corrections_stored(url: str) -> list[tuple[str, str]]:
    """(type, id) of every correction in the hub's event store (``bus_events``)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(bus_tables.events.c.type, bus_tables.events.c.event_id)
            .where(bus_tables.events.c.source == CORRECTION_SOURCE)
            .order_by(bus_tables.events.c.seq)
        ).all()
    return [(row.type, row.event_id) for row in rows]


async def _run_the_hub_until_idle(settings: Settings) -> None:
    """What ``retailsync serve`` does with the bus: start it, deliver, close."""
    hub = bootstrap(settings, configure_logs=False)
    await hub.bus.start()
    try:
        await hub.bus.deliver_until_idle()
    finally:
        await hub.bus.close()
        await hub.aclose()


def test_cli_corrections_are_stored_on_the_bus_and_a_running_hub_applies_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    with SandboxServer(create_shopify_sandbox()) as shop_server:
        shop: ShopifySandbox = shop_server.app.state.sandbox
        shop.seed_level(1001, 55, 7)
        config = tmp_path / "retailsync.toml"
        config.write_text(
            f"""
[connectors.shopify]
shop_domain = "{SANDBOX_SHOP_DOMAIN}"
access_token = "{SANDBOX_ACCESS_TOKEN}"
webhook_secret = "{SANDBOX_WEBHOOK_SECRET}"
base_url = "{shop_server.base_url}"

[reconcile.sources]
storefront_items = {{ A = "1001" }}
storefront_locations = {{ DC1 = "55" }}
"""
        )
        monkeypatch.setenv("RETAILSYNC_DATABASE_URL", url)
        monkeypatch.setenv("RETAILSYNC_CONFIG_FILE", str(config))
        monkeypatch.setenv("COLUMNS", "200")
        get_settings.cache_clear()
        stock = "sku,location,on_hand,reserved,allocated,in_transit\nA,DC1,10,0,0,0\n"
        (tmp_path / "erp.csv").write_text(stock)
        (tmp_path / "wms.csv").write_text(stock)
        (tmp_path / "shop.csv").write_text("sku,location,available\nA,DC1,7\n")
        files = ["--erp", "erp.csv", "--wms", "wms.csv", "--storefront", "shop.csv"]
        monkeypatch.chdir(tmp_path)
        runner = CliRunner()
        try:
            result = runner.invoke(cli_app, ["inventory", *files])
            assert result.exit_code == 0, result.output
            assert "1 corrected" in result.output
            (run,) = _report_store(url).list_runs(job="inventory")
            (drift,) = _report_store(url).iter_drifts(run.id)
            assert drift.kind == "stock.storefront_level_mismatch"
            # Durable in the event store, not yet applied: the command does not deliver.
            stored = _corrections_stored(url)
            assert stored == [("retailsync.inventory.position_reported", drift.correction_event_id)]
            assert shop.inventory_levels[(1001, 55)]["available"] == 7

            again = runner.invoke(cli_app, ["inventory", *files])
            assert again.exit_code == 0, again.output
            assert _corrections_stored(url) == stored  # same drift, same id: stored once

            # The hub, started later on the same database, delivers what the command stored.
            asyncio.run(_run_the_hub_until_idle(get_settings()))
            assert shop.inventory_levels[(1001, 55)]["available"] == 10

            dry = runner.invoke(cli_app, ["inventory", *files, "--dry-run"])
            assert dry.exit_code == 0, dry.output
            assert _corrections_stored(url) == stored
        finally:
            get_settings.cache_clear()
