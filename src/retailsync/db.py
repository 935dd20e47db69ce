"""Persistence plumbing: engines, the shared table metadata and migrations.

Every table in the hub is declared on :data:`metadata` (SQLAlchemy Core) and created by an
Alembic revision under ``retailsync/migrations``. The same migrations run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base sharing :data:`metadata`."""

    metadata = metadata


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("timeout", 30)
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` pointing at the packaged migrations and ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_database_url(url).replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "heads") -> None:
    """Apply every migration up to ``revision`` (all heads by default)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revisions(url: str) -> set[str]:
    """The revisions the database at ``url`` is stamped with."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def database_is_reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False


def reads_block_briefly(engine: Engine) -> bool:
    """True when a point read on ``engine`` is cheaper on the event loop than in a thread.

    SQLite is a local file (WAL: readers never wait for the writer): a point read takes tens of
    microseconds, less than handing it to a worker thread and back. A networked database waits
    on a round trip: that belongs in a thread.
    """
    return engine.dialect.name == "sqlite"


def _bound_to_open_transaction(engine: Engine) -> bool:
    # A stand-in whose connect()/begin() hand out a transaction already open on this event
    # loop (a bus delivery's): it must be used right here, never from another thread.
    return not isinstance(engine, Engine)


async def run_read(engine: Engine, read: Callable[..., T], *args: Any) -> T:
    """Run the blocking database ``read(*args)`` on the loop or in a thread (see above)."""
    if _bound_to_open_transaction(engine) or reads_block_briefly(engine):
        return read(*args)
    return await anyio.to_thread.run_sync(read, *args)


async def run_write(engine: Engine, write: Callable[..., T], *args: Any) -> T:
    """Run the blocking database ``write(*args)`` in a worker thread (it may wait for SQLite's
    one writer), or right here when ``engine`` stands for a transaction open on this loop."""
    if _bound_to_open_transaction(engine):
        return write(*args)
    return await anyio.to_thread.run_sync(write, *args)
