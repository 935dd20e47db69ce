from __future__ import annotations

import pytest

from retailsync.db import create_engine_for, upgrade_database
from retailsync.xref import (
    CrossReferenceConflict,
    canonical_id_for,
    external_id_for,
    link,
    links_for,
)


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request: pytest.FixtureRequest) -> str:
    url = str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    upgrade_database(url)
    return url


def test_link_and_look_up_both_ways(migrated_url: str) -> None:
    engine = create_engine_for(migrated_url)
    with engine.begin() as conn:
        link(conn, entity_kind="order", canonical_id="ord_1", system="erp", external_id="42")
        link(conn, entity_kind="order", canonical_id="ord_1", system="shopify", external_id="9001")
        link(conn, entity_kind="order", canonical_id="ord_1", system="erp", external_id="42")
    with engine.connect() as conn:
        assert (
            external_id_for(conn, entity_kind="order", canonical_id="ord_1", system="erp") == "42"
        )
        assert canonical_id_for(
            conn, entity_kind="order", system="shopify", external_id="9001"
        ) == ("ord_1")
        assert links_for(conn, "ord_1") == {"erp": "42", "shopify": "9001"}
    engine.dispose()


def test_conflicting_links_are_refused(migrated_url: str) -> None:
    engine = create_engine_for(migrated_url)
    with engine.begin() as conn:
        link(conn, entity_kind="order", canonical_id="ord_1", system="erp", external_id="42")
    with engine.begin() as conn, pytest.raises(CrossReferenceConflict, match="already linked"):
        link(conn, entity_kind="order", canonical_id="ord_2", system="erp", external_id="42")
    with engine.begin() as conn, pytest.raises(CrossReferenceConflict, match="'ord_1'"):
        link(conn, entity_kind="order", canonical_id="ord_1", system="erp", external_id="43")
    engine.dispose()
