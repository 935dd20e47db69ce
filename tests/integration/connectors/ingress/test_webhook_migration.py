"""The webhooks_0001 migration creates the same tables the ingress declares (SQLite + PG)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from retailsync.connectors.ingress import webhook_deliveries, webhook_rejections
from retailsync.db import alembic_config, create_engine_for, upgrade_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_migration_matches_the_declared_tables_and_downgrades(database_url: str) -> None:
    from alembic import command

    upgrade_database(database_url, "webhooks_0001")
    engine = create_engine_for(database_url)
    try:
        inspector = sa.inspect(engine)
        for table in (webhook_deliveries, webhook_rejections):
            migrated = {column["name"] for column in inspector.get_columns(table.name)}
            assert migrated == {column.name for column in table.columns}
        unique = inspector.get_unique_constraints("webhook_deliveries")
        assert [sorted(u["column_names"]) for u in unique] == [["connector", "delivery_id"]]
        command.downgrade(alembic_config(database_url), "0001_foundation")
        assert not sa.inspect(engine).has_table("webhook_deliveries")
        assert not sa.inspect(engine).has_table("webhook_rejections")
    finally:
        engine.dispose()
