"""The same migrations run up from empty on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from retailsync.db import create_engine_for, current_revisions, metadata, upgrade_database
from retailsync.migrations_check import head_revisions


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


def test_upgrade_from_empty_reaches_every_head(empty_database_url: str) -> None:
    assert current_revisions(empty_database_url) == set()
    upgrade_database(empty_database_url)
    assert current_revisions(empty_database_url) == head_revisions()
    upgrade_database(empty_database_url)  # idempotent
    assert current_revisions(empty_database_url) == head_revisions()


def test_migrated_schema_matches_declared_tables(empty_database_url: str) -> None:
    """Every table the code declares exists after migration, with the declared columns."""
    import retailsync.tables  # noqa: F401  (imports every package's table declarations)

    upgrade_database(empty_database_url)
    engine = create_engine_for(empty_database_url)
    try:
        inspector = sa.inspect(engine)
        existing = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            assert table.name in existing, f"table {table.name} is declared but not migrated"
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            declared = {column.name for column in table.columns}
            assert declared <= columns, f"{table.name} lacks {sorted(declared - columns)}"
    finally:
        engine.dispose()
