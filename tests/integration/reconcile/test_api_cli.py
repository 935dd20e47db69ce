"""GET /v1/experience/availability, POST/GET /v1/admin/reconciliations, and the CLI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client
from retailsync.api.scopes import Scope
from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import Settings, get_settings
from retailsync.reconcile.api import router
from retailsync.reconcile.availability import AllocationReport, AvailabilitySettings, StockReport
from retailsync.reconcile.cli import app as cli_app
from retailsync.reconcile.merge import pages_of
from retailsync.reconcile.projection import AvailabilityProjection
from retailsync.reconcile.records import PublishedLevel, StockFigure

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
