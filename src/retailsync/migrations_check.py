"""Introspection of the packaged migrations (used by `retailsync db` and the tests)."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from retailsync.db import MIGRATIONS_DIR, alembic_config


def head_revisions() -> set[str]:
    """Every head revision the packaged migrations define."""
    config = alembic_config("sqlite://")
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return set(ScriptDirectory.from_config(config).get_heads())
