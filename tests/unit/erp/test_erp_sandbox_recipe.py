"""The sandbox's template cache key and seed data (no ERP started)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from retailsync.sandbox.erp import SandboxSeed, template_key
from retailsync.sandbox.erp.launcher import copy_database
from retailsync.sandbox.erp.recipe import fiscal_year_span
from retailsync.sandbox.erp.seed import CUSTOMERS, PRODUCTS


def test_template_key_is_stable_and_changes_with_the_year() -> None:
    day = dt.date(2026, 6, 1)
    assert template_key(day) == template_key(day)
    assert template_key(day) != template_key(dt.date(2027, 6, 1))
    assert fiscal_year_span(day) == [2025, 2026, 2027]


def test_seed_data_is_unique_and_round_trips(tmp_path: Path) -> None:
    assert len({p.sku for p in PRODUCTS}) == len(PRODUCTS)
    assert len({c.email for c in CUSTOMERS}) == len(CUSTOMERS)
    seed = SandboxSeed(
        company_id=1,
        currency_id=1,
        currency="EUR",
        payment_term_id=1,
        complaint_type_id=1,
        fiscal_years=[1],
        products={"RS-CAP": 4},
        customers={"ada@example.com": 2},
        addresses={"ada@example.com": 2},
        locations={"STO": 3},
    )
    path = tmp_path / "seed.json"
    path.write_text(seed.to_json())
    assert SandboxSeed.load(path) == seed
    assert seed.storage_location_id == 3


def test_copy_drops_stale_wal_files(tmp_path: Path) -> None:
    source = tmp_path / "a.sqlite"
    source.write_bytes(b"db")
    target = tmp_path / "b.sqlite"
    Path(f"{target}-wal").write_bytes(b"stale")
    copy_database(source, target)
    assert target.read_bytes() == b"db"
    assert not Path(f"{target}-wal").exists()
