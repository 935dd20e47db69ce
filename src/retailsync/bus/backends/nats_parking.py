"""Parked deliveries of the JetStream backend, kept in the shared ``bus_parked`` table.

A failing event is not NAKed back into JetStream: with one in-flight event per partition
consumer that would stall every key of the partition for the whole backoff. Instead it is
parked here (``shard`` = JetStream partition, ``seq`` = stream sequence) with its next attempt
time, and later events of the same key are parked behind it ("held", attempts 0). Only the
head (lowest sequence) of a key is ever attempted; a worker claims it by moving its
``next_attempt_at`` forward by the lease, so two workers never run the same key at once and a
worker that dies loses the claim after the lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from retailsync.bus import driver
from retailsync.bus import tables as t
from retailsync.bus.backend import AttemptRecord
from retailsync.bus.consumer import as_utc, dump_attempts, upsert_insert, utcnow

_IN_CHUNK = 500
p = t.parked.c


def blocked_keys(conn: sa.Connection, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (subscriber, partition key) pairs among ``pairs`` that have parked events (one
    statement per chunk of keys, on the driver: it runs for every delivery batch)."""
    wanted = set(pairs)
    if not wanted:
        return set()
    subscribers = sorted({s for s, _ in wanted})
    keys = sorted({k for _, k in wanted})
    mark = driver.placeholder(conn)
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        rows = driver.execute(
            conn,
            f"SELECT DISTINCT subscriber, partition_key FROM {t.parked.name} "
            f"WHERE subscriber IN ({', '.join([mark] * len(subscribers))}) "
            f"AND partition_key IN ({', '.join([mark] * len(chunk))})",
            (*subscribers, *chunk),
        )
        found.update((str(subscriber), str(key)) for subscriber, key in rows)
    return found & wanted


def park(
    conn: sa.Connection,
    *,
    subscriber: str,
    partition: int,
    partition_key: str,
    seq: int,
    attempts: int,
    due: datetime,
    history: Sequence[AttemptRecord] = (),
    exception_id: int | None = None,
    forced: bool = False,
) -> None:
    """Park one event; a second park of the same (subscriber, seq) keeps the first row."""
    conn.execute(
        upsert_insert(conn, t.parked)
        .values(
            subscriber=subscriber,
            shard=partition,
            partition_key=partition_key,
            seq=seq,
            attempts=attempts,
            next_attempt_at=due,
            history=dump_attempts(history),
            exception_id=exception_id,
            forced=forced,
        )
        .on_conflict_do_nothing(index_elements=[p.subscriber, p.seq])
    )


def requeue(
    conn: sa.Connection,
    *,
    subscriber: str,
    partition: int,
    partition_key: str,
    seq: int,
    due: datetime,
    exception_id: int,
) -> None:
    """Queue a manual retry of an exception entry (replacing any parked row of that event)."""
    conn.execute(t.parked.delete().where(p.subscriber == subscriber, p.seq == seq))
    park(
        conn,
        subscriber=subscriber,
        partition=partition,
        partition_key=partition_key,
        seq=seq,
        attempts=0,
        due=due,
        exception_id=exception_id,
    )


def due_heads(
    conn: sa.Connection, subscribers: Sequence[str], now: datetime, limit: int
) -> list[sa.Row[Any]]:
    """Heads of parked keys (their lowest sequence) whose next attempt is due."""
    if not subscribers:
        return []
    q = t.parked.alias("q")
    lowest = (
        sa.select(sa.func.min(q.c.seq))
        .where(q.c.subscriber == p.subscriber, q.c.partition_key == p.partition_key)
        .scalar_subquery()
    )
    return list(
        conn.execute(
            sa.select(t.parked)
            .where(p.subscriber.in_(list(subscribers)), p.next_attempt_at <= now, p.seq == lowest)
            .order_by(p.next_attempt_at, p.id)
            .limit(limit)
        )
    )


def next_head(conn: sa.Connection, subscriber: str, partition_key: str) -> sa.Row[Any] | None:
    """The current head of a key, due or not."""
    return conn.execute(
        sa.select(t.parked)
        .where(p.subscriber == subscriber, p.partition_key == partition_key)
        .order_by(p.seq)
        .limit(1)
    ).first()


def claim(conn: sa.Connection, row: sa.Row[Any], until: datetime) -> bool:
    """Take the head ``row`` for this worker until ``until``; False when another worker won."""
    changed = conn.execute(
        t.parked.update()
        .where(p.id == row.id, p.next_attempt_at == row.next_attempt_at)
        .values(next_attempt_at=until)
    ).rowcount
    return changed == 1


def settle(conn: sa.Connection, row_id: int) -> None:
    conn.execute(t.parked.delete().where(p.id == row_id))


def reschedule(
    conn: sa.Connection,
    row_id: int,
    *,
    attempts: int,
    history: Sequence[AttemptRecord],
    due: datetime,
) -> None:
    conn.execute(
        t.parked.update()
        .where(p.id == row_id)
        .values(attempts=attempts, history=dump_attempts(history), next_attempt_at=due)
    )


def next_due_in(conn: sa.Connection, subscribers: Sequence[str]) -> float | None:
    """Seconds until the earliest parked attempt of ``subscribers`` (0 if overdue), None if
    nothing is parked."""
    if not subscribers:
        return None
    earliest = conn.execute(
        sa.select(sa.func.min(p.next_attempt_at)).where(p.subscriber.in_(list(subscribers)))
    ).scalar()
    if earliest is None:
        return None
    return max(0.0, (as_utc(earliest) - utcnow()).total_seconds())


def lease_until(now: datetime, lease_ttl: float) -> datetime:
    return now + timedelta(seconds=lease_ttl)
