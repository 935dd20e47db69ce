"""Cross-reference ids: one canonical id, and each system's own id for the same thing.

A canonical entity (``ord_…``) has at most one id per (system, entity kind), and an external id
belongs to at most one canonical entity; both are unique constraints in the ``xref`` table, so
two connectors racing to link the same record cannot create a second mapping.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retailsync.db import metadata

xref_table = sa.Table(
    "xref",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entity_kind", sa.String(40), nullable=False),
    sa.Column("canonical_id", sa.String(100), nullable=False),
    sa.Column("system", sa.String(60), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("system", "entity_kind", "external_id", name="uq_xref_external"),
    sa.UniqueConstraint("system", "entity_kind", "canonical_id", name="uq_xref_canonical"),
    sa.Index("ix_xref_canonical_id", "canonical_id"),
)


class CrossReferenceConflict(Exception):
    """A link would give an entity a second id in a system, or an id a second entity."""


def link(
    connection: Connection,
    *,
    entity_kind: str,
    canonical_id: str,
    system: str,
    external_id: str,
) -> None:
    """Record that ``canonical_id`` is ``external_id`` in ``system``; repeating it is a no-op."""
    existing = connection.execute(
        sa.select(xref_table.c.canonical_id, xref_table.c.external_id).where(
            xref_table.c.system == system,
            xref_table.c.entity_kind == entity_kind,
            sa.or_(
                xref_table.c.canonical_id == canonical_id,
                xref_table.c.external_id == external_id,
            ),
        )
    ).all()
    for row in existing:
        if row.canonical_id == canonical_id and row.external_id == external_id:
            return
        raise CrossReferenceConflict(
            f"{system} {entity_kind} {external_id!r} cannot be linked to {canonical_id!r}: "
            f"{row.canonical_id!r} is already linked to {system} id {row.external_id!r}"
        )
    connection.execute(
        xref_table.insert().values(
            entity_kind=entity_kind,
            canonical_id=canonical_id,
            system=system,
            external_id=external_id,
            created_at=datetime.now(UTC),
        )
    )


def external_id_for(
    connection: Connection, *, entity_kind: str, canonical_id: str, system: str
) -> str | None:
    """The id ``system`` uses for ``canonical_id``, if linked."""
    return connection.execute(
        sa.select(xref_table.c.external_id).where(
            xref_table.c.system == system,
            xref_table.c.entity_kind == entity_kind,
            xref_table.c.canonical_id == canonical_id,
        )
    ).scalar_one_or_none()


def canonical_id_for(
    connection: Connection, *, entity_kind: str, system: str, external_id: str
) -> str | None:
    """The canonical id linked to ``system``'s ``external_id``, if any."""
    return connection.execute(
        sa.select(xref_table.c.canonical_id).where(
            xref_table.c.system == system,
            xref_table.c.entity_kind == entity_kind,
            xref_table.c.external_id == external_id,
        )
    ).scalar_one_or_none()


def links_for(connection: Connection, canonical_id: str) -> dict[str, str]:
    """Every system's id for ``canonical_id``, as ``{system: external_id}``."""
    rows = connection.execute(
        sa.select(xref_table.c.system, xref_table.c.external_id).where(
            xref_table.c.canonical_id == canonical_id
        )
    ).all()
    return {row.system: row.external_id for row in rows}
