"""The customer master in SQL: golden records, each system's record, proposals, consent outbox.

``ingest`` resolves one system's record against the golden records found through blocking
keys (:func:`~retailsync.domain.identity.match_keys`): a confident match with a strong key
joins that golden record, a plausible one becomes a merge proposal a person confirms, anything
else starts a new golden record. Each system's id is linked in the cross-reference table.
Consent changes become one outbox row per (system, id) to tell, sent once by
``propagate_consent``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from retailsync.customers import tables as t
from retailsync.domain.customers import ContactChannel
from retailsync.domain.identifiers import EntityKind, derive_id
from retailsync.domain.identity import (
    ConsentChange,
    ConsentUpdate,
    MatchDecision,
    MatchResult,
    MatchRules,
    SourceCustomer,
    Survivorship,
    compare,
    golden_values,
    match_keys,
    plan_consent_updates,
)
from retailsync.xref import CrossReferenceConflict, link, xref_table

__all__ = ["CustomerMaster", "GoldenRecord", "IngestResult", "MergeProposal", "UnknownProposal"]


class UnknownProposal(LookupError):
    """A merge proposal id that does not exist or was already decided."""

    def __init__(self, proposal_id: str) -> None:
        super().__init__(
            f"no open merge proposal {proposal_id!r}; list open ones with "
            f"CustomerMaster.open_proposals()"
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to an ingested record: ``new``, ``matched``, ``proposed`` or ``updated``."""

    golden_id: str
    outcome: str
    match: MatchResult | None = None
    proposal_id: str | None = None


@dataclass(frozen=True, slots=True)
class MergeProposal:
    id: str
    golden_a: str
    golden_b: str
    score: float
    evidence: list[str]
    status: str


@dataclass(frozen=True, slots=True)
class GoldenRecord:
    """A golden record: surviving values, consents, and each system's ids."""

    id: str
    version: int
    values: dict[str, str | None]
    consents: dict[str, bool]
    links: dict[str, list[str]]


class CustomerMaster:
    """Golden customer records over a SQLAlchemy engine."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        rules: MatchRules | None = None,
        survivorship: Survivorship | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules or MatchRules()
        self.survivorship = survivorship or Survivorship()

    # ---- resolving --------------------------------------------------------------------------

    def ingest(self, record: SourceCustomer, *, now: datetime | None = None) -> IngestResult:
        """Resolve ``record`` to a golden record (see the module docstring)."""
        now = now or datetime.now(UTC)
        with self.engine.begin() as connection:
            known = connection.execute(
                sa.select(t.source_records.c.golden_id).where(
                    t.source_records.c.system == record.system,
                    t.source_records.c.external_id == record.external_id,
                )
            ).scalar()
            if known is not None:
                self._store_source(connection, known, record, now)
                self._refresh(connection, known, now)
                return IngestResult(known, "updated")
            best: tuple[MatchResult, str] | None = None
            for golden_id in self._candidates(connection, record):
                for other in self._sources(connection, golden_id):
                    result = compare(record, other, self.rules)
                    if best is None or result.score > best[0].score:
                        best = (result, golden_id)
            if best is not None and best[0].decision is MatchDecision.SAME:
                self._store_source(connection, best[1], record, now)
                self._refresh(connection, best[1], now)
                return IngestResult(best[1], "matched", best[0])
            golden_id = derive_id(EntityKind.CUSTOMER, record.system, record.external_id)
            connection.execute(
                t.golden.insert().values(id=golden_id, version=0, record="{}", updated_at=now)
            )
            self._store_source(connection, golden_id, record, now)
            self._refresh(connection, golden_id, now)
            if best is not None and best[0].decision is MatchDecision.PROPOSE:
                proposal_id = self._propose(connection, best[1], golden_id, best[0], now)
                return IngestResult(golden_id, "proposed", best[0], proposal_id)
            return IngestResult(golden_id, "new", best[0] if best else None)

    def _candidates(self, connection: sa.Connection, record: SourceCustomer) -> list[str]:
        keys = match_keys(record, self.rules)
        if not keys:
            return []
        condition = sa.or_(
            *[
                (t.match_keys.c.kind == kind) & (t.match_keys.c.value == value)
                for kind, value in keys
            ]
        )
        rows = connection.execute(
            sa.select(t.match_keys.c.golden_id).where(condition).distinct().limit(50)
        )
        return sorted(row.golden_id for row in rows)

    def _sources(self, connection: sa.Connection, golden_id: str) -> list[SourceCustomer]:
        rows = connection.execute(
            sa.select(t.source_records.c.record).where(t.source_records.c.golden_id == golden_id)
        )
        return [SourceCustomer.model_validate_json(row.record) for row in rows]

    def _store_source(
        self, connection: sa.Connection, golden_id: str, record: SourceCustomer, now: datetime
    ) -> None:
        values = {"golden_id": golden_id, "record": record.model_dump_json(), "updated_at": now}
        updated = connection.execute(
            t.source_records.update()
            .where(
                t.source_records.c.system == record.system,
                t.source_records.c.external_id == record.external_id,
            )
            .values(values)
        ).rowcount
        if not updated:
            connection.execute(
                t.source_records.insert().values(
                    system=record.system, external_id=record.external_id, **values
                )
            )
        try:
            with connection.begin_nested():
                link(
                    connection,
                    entity_kind=EntityKind.CUSTOMER.value,
                    canonical_id=golden_id,
                    system=record.system,
                    external_id=record.external_id,
                )
        except CrossReferenceConflict:
            pass  # a second account in the same system: kept in customer_sources only

    def _refresh(self, connection: sa.Connection, golden_id: str, now: datetime) -> None:
        sources = self._sources(connection, golden_id)
        values = golden_values(sources, self.survivorship, region=self.rules.default_region)
        current = connection.execute(
            sa.select(t.golden.c.record, t.golden.c.version).where(t.golden.c.id == golden_id)
        ).one()
        stored = json.loads(current.record) if current.record else {}
        consents: dict[str, bool] = stored.get("consents", {})
        if not consents:
            for source in sorted(sources, key=lambda s: s.updated_at or now):
                consents.update(
                    {channel.value: granted for channel, granted in source.consents.items()}
                )
        document = {"values": values, "consents": consents}
        connection.execute(
            t.golden.update()
            .where(t.golden.c.id == golden_id)
            .values(
                record=json.dumps(document, sort_keys=True),
                version=current.version + 1,
                updated_at=now,
            )
        )
        connection.execute(t.match_keys.delete().where(t.match_keys.c.golden_id == golden_id))
        keys = set()
        for source in sources:
            keys |= match_keys(source, self.rules)
        if keys:
            connection.execute(
                t.match_keys.insert(),
                [{"kind": k, "value": v[:300], "golden_id": golden_id} for k, v in sorted(keys)],
            )

    def _propose(
        self,
        connection: sa.Connection,
        existing: str,
        new: str,
        result: MatchResult,
        now: datetime,
    ) -> str:
        a, b = sorted((existing, new))
        proposal_id = "mrg-" + hashlib.sha256(f"{a}|{b}".encode()).hexdigest()[:32]
        found = connection.execute(
            sa.select(t.merge_proposals.c.id).where(t.merge_proposals.c.id == proposal_id)
        ).scalar()
        if found is None:
            connection.execute(
                t.merge_proposals.insert().values(
                    id=proposal_id,
                    golden_a=existing,
                    golden_b=new,
                    score=result.score,
                    evidence=json.dumps(list(result.evidence)),
                    status="proposed",
                    created_at=now,
                )
            )
        return proposal_id

    # ---- people decide ----------------------------------------------------------------------

    def open_proposals(self) -> list[MergeProposal]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.merge_proposals)
                .where(t.merge_proposals.c.status == "proposed")
                .order_by(t.merge_proposals.c.created_at, t.merge_proposals.c.id)
            ).all()
        return [
            MergeProposal(r.id, r.golden_a, r.golden_b, r.score, json.loads(r.evidence), r.status)
            for r in rows
        ]

    def confirm_merge(self, proposal_id: str, *, by: str, now: datetime | None = None) -> str:
        """Merge the proposal's second golden record into the first; returns the survivor."""
        now = now or datetime.now(UTC)
        with self.engine.begin() as connection:
            row = connection.execute(
                sa.select(t.merge_proposals).where(
                    t.merge_proposals.c.id == proposal_id,
                    t.merge_proposals.c.status == "proposed",
                )
            ).first()
            if row is None:
                raise UnknownProposal(proposal_id)
            keep, gone = row.golden_a, row.golden_b
            moved = self._sources(connection, gone)
            connection.execute(
                t.source_records.update()
                .where(t.source_records.c.golden_id == gone)
                .values(golden_id=keep, updated_at=now)
            )
            connection.execute(t.match_keys.delete().where(t.match_keys.c.golden_id == gone))
            connection.execute(t.golden.delete().where(t.golden.c.id == gone))
            connection.execute(
                xref_table.delete().where(
                    xref_table.c.canonical_id == gone,
                    xref_table.c.entity_kind == EntityKind.CUSTOMER.value,
                )
            )
            for source in moved:
                self._store_source(connection, keep, source, now)
            self._refresh(connection, keep, now)
            connection.execute(
                t.merge_proposals.update()
                .where(t.merge_proposals.c.id == proposal_id)
                .values(status="accepted", decided_at=now, decided_by=by)
            )
        return str(keep)

    def reject_merge(self, proposal_id: str, *, by: str, now: datetime | None = None) -> None:
        with self.engine.begin() as connection:
            changed = connection.execute(
                t.merge_proposals.update()
                .where(
                    t.merge_proposals.c.id == proposal_id,
                    t.merge_proposals.c.status == "proposed",
                )
                .values(status="rejected", decided_at=now or datetime.now(UTC), decided_by=by)
            ).rowcount
        if not changed:
            raise UnknownProposal(proposal_id)

    # ---- reading ----------------------------------------------------------------------------

    def golden(self, golden_id: str) -> GoldenRecord:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(t.golden).where(t.golden.c.id == golden_id)).one()
            links: dict[str, list[str]] = {}
            for src in connection.execute(
                sa.select(t.source_records.c.system, t.source_records.c.external_id)
                .where(t.source_records.c.golden_id == golden_id)
                .order_by(t.source_records.c.system, t.source_records.c.external_id)
            ):
                links.setdefault(src.system, []).append(src.external_id)
        document: dict[str, Any] = json.loads(row.record)
        return GoldenRecord(
            row.id, row.version, document.get("values", {}), document.get("consents", {}), links
        )

    def golden_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            return [
                r.id for r in connection.execute(sa.select(t.golden.c.id).order_by(t.golden.c.id))
            ]

    # ---- consent ----------------------------------------------------------------------------

    def change_consent(
        self,
        golden_id: str,
        channel: ContactChannel,
        *,
        granted: bool,
        changed_at: datetime,
        source_system: str,
    ) -> list[ConsentUpdate]:
        """Record the change on the golden record and queue it for every other system, once."""
        change = ConsentChange(golden_id, channel, granted, changed_at, source_system)
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(t.golden).where(t.golden.c.id == golden_id)).one()
            document = json.loads(row.record)
            document.setdefault("consents", {})[channel.value] = granted
            connection.execute(
                t.golden.update()
                .where(t.golden.c.id == golden_id)
                .values(record=json.dumps(document, sort_keys=True), version=row.version + 1)
            )
            links: dict[str, list[str]] = {}
            for src in connection.execute(
                sa.select(t.source_records.c.system, t.source_records.c.external_id).where(
                    t.source_records.c.golden_id == golden_id
                )
            ):
                links.setdefault(src.system, []).append(src.external_id)
            already = {
                r.id
                for r in connection.execute(
                    sa.select(t.consent_updates.c.id).where(
                        t.consent_updates.c.golden_id == golden_id
                    )
                )
            }
            planned = plan_consent_updates(change, links, already_planned=already)
            for update in planned:
                connection.execute(
                    t.consent_updates.insert().values(
                        id=update.id,
                        golden_id=golden_id,
                        system=update.system,
                        external_id=update.external_id,
                        channel=update.channel.value,
                        granted=update.granted,
                        changed_at=update.changed_at,
                        status="pending",
                        created_at=now,
                    )
                )
        return planned

    async def propagate_consent(
        self, send: Callable[[ConsentUpdate], Awaitable[None]], *, limit: int = 500
    ) -> int:
        """Send each pending consent update once (marked sent after ``send`` returns)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.consent_updates)
                .where(t.consent_updates.c.status == "pending")
                .order_by(t.consent_updates.c.created_at, t.consent_updates.c.id)
                .limit(limit)
            ).all()
        sent = 0
        for row in rows:
            update = ConsentUpdate(
                row.id,
                row.golden_id,
                row.system,
                row.external_id,
                ContactChannel(row.channel),
                row.granted,
                row.changed_at,
            )
            await send(update)
            with self.engine.begin() as connection:
                connection.execute(
                    t.consent_updates.update()
                    .where(t.consent_updates.c.id == row.id)
                    .values(status="sent", sent_at=datetime.now(UTC))
                )
            sent += 1
        return sent


def records_of(results: Sequence[IngestResult]) -> set[str]:
    """The distinct golden ids a batch of ingests resolved to."""
    return {result.golden_id for result in results}
