"""Inbox records released or re-marked together touch exactly the (subscriber, hash) pairs
given: on PostgreSQL one statement pairs two arrays element by element, and a pair must not
match another subscriber's record of the same event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from retailsync.bus import driver
from retailsync.bus import tables as t
from retailsync.bus.consumer import claim_inbox, mark_inbox, release_inbox
from retailsync.db import create_engine_for, upgrade_database

SUBSCRIBERS = ("orders", "refunds")
HASHES = tuple(f"{n:040x}" for n in range(300))


@pytest.fixture(params=["sqlite", "postgres"])
def inbox_engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade_database(url)
    engine = create_engine_for(url)
    with engine.begin() as conn:
        stamp = driver.db_datetime(conn, datetime.now(UTC))
        claim_inbox(
            conn,
            [
                (subscriber, digest, position, "handled", 1, stamp)
                for subscriber in SUBSCRIBERS
                for position, digest in enumerate(HASHES)
            ],
        )
    yield engine
    engine.dispose()


def records(engine: sa.Engine) -> dict[tuple[str, str], str]:
    c = t.inbox.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.subscriber, c.dedup_hash, c.outcome))
        return {(r.subscriber, r.dedup_hash): r.outcome for r in rows}


def crossed_pairs() -> list[tuple[str, str]]:
    """Even hashes of one subscriber, odd ones of the other: every hash of the list exists
    for both subscribers, so a statement that matched the arrays crosswise would hit both."""
    return [(SUBSCRIBERS[n % 2], digest) for n, digest in enumerate(HASHES)]


def test_release_deletes_exactly_the_given_pairs(inbox_engine: sa.Engine) -> None:
    released = crossed_pairs()
    with inbox_engine.begin() as conn:
        release_inbox(conn, released)
        release_inbox(conn, [])
    left = records(inbox_engine)
    assert set(left) == {
        (subscriber, digest)
        for subscriber in SUBSCRIBERS
        for digest in HASHES
        if (subscriber, digest) not in set(released)
    }
    assert len(left) == len(HASHES)


def test_mark_sets_the_outcome_of_exactly_the_given_pairs(inbox_engine: sa.Engine) -> None:
    marked = crossed_pairs()
    with inbox_engine.begin() as conn:
        mark_inbox(conn, marked, "stale")
        mark_inbox(conn, [], "stale")
    outcomes = records(inbox_engine)
    assert len(outcomes) == 2 * len(HASHES)
    assert {pair for pair, outcome in outcomes.items() if outcome == "stale"} == set(marked)
    assert all(outcome == "handled" for pair, outcome in outcomes.items() if pair not in marked)
