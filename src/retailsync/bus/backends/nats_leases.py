"""Partition leases for the JetStream backend (tables ``bus_partition_leases`` and
``bus_partition_workers``, migration ``bus_0002``).

A partition consumer hands a worker many events at once (``max_in_flight``), so two workers
pulling from it would get events of the same key at the same time. Only the worker holding a
(subscription, partition) lease pulls from that consumer; the live workers of a namespace
share the partitions fairly (each takes at most ``ceil(partitions / live workers)``); every
delivery transaction checks, before it commits, that this worker still holds the leases of
the events it carries (:meth:`PartitionLeases.fence`), so a worker that lost a lease while a
handler ran commits nothing.

A lease row also says how the previous holder left it, which decides whether a new holder may
pull at once: released cleanly (``lease_expires_at`` NULL: nothing of it is still pending on
the server) or not (the time its last lease ran out: events it held come back after AckWait,
and the new holder waits for that so they come back before newer ones).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from retailsync.bus import tables as t
from retailsync.bus.consumer import as_utc, upsert_insert, utcnow

PartitionKey = tuple[str, int]  # (subscription, partition)


@dataclass(frozen=True, slots=True)
class Acquired:
    """A lease this worker just took; ``previous_expiry`` is when the previous holder's lease
    ran out if it did not release it cleanly (None: free to pull at once)."""

    key: PartitionKey
    previous_expiry: datetime | None


@dataclass(frozen=True, slots=True)
class LeaseRound:
    """The outcome of one :meth:`PartitionLeases.renew`."""

    held: frozenset[PartitionKey]  # renewed, still ours
    lost: frozenset[PartitionKey]  # we thought we held them, another worker has them now
    acquired: tuple[Acquired, ...]
    surplus: tuple[PartitionKey, ...]  # over the fair share: to hand back once drained


class PartitionLeases:
    """Lease bookkeeping of one delivery run (``owner`` is unique per run)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        namespace: str,
        owner: str,
        partitions: int,
        ttl: float,
    ) -> None:
        self.engine = engine
        self.namespace = namespace
        self.owner = owner
        self.partitions = partitions
        self.ttl = ttl
        self._postgres = engine.dialect.name == "postgresql"
        self._rows_for: frozenset[str] = frozenset()  # subscriptions whose rows exist

    def renew(self, names: Collection[str], keep: Collection[PartitionKey]) -> LeaseRound:
        """Heartbeat; renew the leases in ``keep`` (what this run still serves); hand back
        any other lease it owns (not cleanly: it stopped serving without draining); take a
        fair share of free or expired ones."""
        now = utcnow()
        expires = now + timedelta(seconds=self.ttl)
        horizon = now - timedelta(seconds=self.ttl)
        lc = t.partition_leases.c
        wc = t.partition_workers.c
        mine = sa.and_(lc.namespace == self.namespace, lc.owner == self.owner)
        with self.engine.begin() as conn:
            if not self._rows_for >= set(names):
                self._ensure_rows(conn, names)
            self._heartbeat(conn, now)
            live = conn.execute(
                sa.select(sa.func.count()).where(
                    wc.namespace == self.namespace, wc.heartbeat_at > horizon
                )
            ).scalar_one()
            target = math.ceil(len(names) * self.partitions / max(1, int(live)))
            owned = {
                (r.subscriber, int(r.partition))
                for r in conn.execute(
                    sa.select(lc.subscriber, lc.partition).where(
                        mine, lc.subscriber.in_(list(names))
                    )
                )
            }
            stale = owned - set(keep)
            for subscriber, partition in stale:  # dropped here without draining
                conn.execute(
                    t.partition_leases.update()
                    .where(mine, lc.subscriber == subscriber, lc.partition == partition)
                    .values(owner=None)
                )
            held = owned & set(keep)
            if held:
                conn.execute(
                    t.partition_leases.update()
                    .where(mine, _keys_in(held))
                    .values(lease_expires_at=expires)
                )
            lost = frozenset(set(keep) - held)
            ordered = sorted(held, key=lambda k: (k[1], k[0]))
            surplus = tuple(ordered[target:]) if len(held) > target else ()
            acquired: list[Acquired] = []
            if len(held) < target:
                acquired = self._take(conn, names, target - len(held), now, expires)
        self._rows_for = frozenset(names)  # committed: no need to look again
        return LeaseRound(frozenset(held), lost, tuple(acquired), surplus)

    def _take(
        self,
        conn: sa.Connection,
        names: Collection[str],
        wanted: int,
        now: datetime,
        expires: datetime,
    ) -> list[Acquired]:
        lc = t.partition_leases.c
        free = sa.or_(lc.owner.is_(None), lc.lease_expires_at < now)
        query = (
            sa.select(lc.subscriber, lc.partition, lc.owner, lc.lease_expires_at)
            .where(lc.namespace == self.namespace, lc.subscriber.in_(list(names)), free)
            .order_by(lc.partition, lc.subscriber)
            .limit(wanted)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        taken: list[Acquired] = []
        for row in list(conn.execute(query)):
            won = conn.execute(
                t.partition_leases.update()
                .where(
                    lc.namespace == self.namespace,
                    lc.subscriber == row.subscriber,
                    lc.partition == row.partition,
                    free,
                )
                .values(owner=self.owner, lease_expires_at=expires)
            ).rowcount
            if won:
                previous = as_utc(row.lease_expires_at) if row.lease_expires_at else None
                taken.append(Acquired((row.subscriber, int(row.partition)), previous))
        return taken

    def _ensure_rows(self, conn: sa.Connection, names: Iterable[str]) -> None:
        lc = t.partition_leases.c
        have = {
            (r.subscriber, int(r.partition))
            for r in conn.execute(
                sa.select(lc.subscriber, lc.partition).where(lc.namespace == self.namespace)
            )
        }
        missing = [
            {"namespace": self.namespace, "subscriber": name, "partition": partition}
            for name in names
            for partition in range(self.partitions)
            if (name, partition) not in have
        ]
        if missing:
            insert = upsert_insert(conn, t.partition_leases)
            conn.execute(insert.on_conflict_do_nothing(), missing)

    def _heartbeat(self, conn: sa.Connection, now: datetime) -> None:
        insert = upsert_insert(conn, t.partition_workers).values(
            namespace=self.namespace, worker_id=self.owner, heartbeat_at=now
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[t.partition_workers.c.namespace, t.partition_workers.c.worker_id],
                set_={"heartbeat_at": now},
            )
        )

    def fence(self, conn: sa.Connection, keys: Collection[PartitionKey]) -> set[PartitionKey]:
        """In the delivery transaction, just before it commits: the leases among ``keys``
        this run no longer holds (lost, or too close to running out to trust). On PostgreSQL
        the check locks the rows, so a worker taking one over waits for this commit."""
        if not keys:
            return set()
        lc = t.partition_leases.c
        margin = timedelta(seconds=min(1.0, self.ttl / 10))
        checked = conn.execute(
            t.partition_leases.update()
            .where(
                lc.namespace == self.namespace,
                lc.owner == self.owner,
                lc.lease_expires_at > utcnow() + margin,
                _keys_in(keys),
            )
            .values(owner=self.owner)
            .returning(lc.subscriber, lc.partition)
        )
        still = {(r.subscriber, int(r.partition)) for r in checked}
        return set(keys) - still

    def release(self, keys: Collection[PartitionKey], clean: bool) -> None:
        """Hand leases back; ``clean`` when nothing this run took from them is pending."""
        if not keys:
            return
        lc = t.partition_leases.c
        values = {"owner": None, "lease_expires_at": None} if clean else {"owner": None}
        with self.engine.begin() as conn:
            conn.execute(
                t.partition_leases.update()
                .where(lc.namespace == self.namespace, lc.owner == self.owner, _keys_in(keys))
                .values(**values)
            )

    def leave(self) -> None:
        """This run stops: it no longer counts towards the fair share."""
        wc = t.partition_workers.c
        with self.engine.begin() as conn:
            conn.execute(
                t.partition_workers.delete().where(
                    wc.namespace == self.namespace, wc.worker_id == self.owner
                )
            )


def _keys_in(keys: Collection[PartitionKey]) -> sa.ColumnElement[bool]:
    lc = t.partition_leases.c
    return sa.or_(
        *(sa.and_(lc.subscriber == name, lc.partition == partition) for name, partition in keys)
    )
