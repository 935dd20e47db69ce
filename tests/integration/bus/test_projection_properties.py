"""Property: any interleaving of duplicates, redeliveries and out-of-order versions projects to
the same state as in-order, once-only application, and each key's order is kept."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailsync.bus.backend import (
    BackendConfig,
    BusOptions,
    EventFilter,
    ReplayRequest,
    RetryPolicy,
    Subscription,
)
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.events import CloudEvent

STATE_DDL = [
    "CREATE TABLE IF NOT EXISTS prop_order_state (run VARCHAR(40), entity VARCHAR(100), "
    "status VARCHAR(40), PRIMARY KEY (run, entity))",
    "CREATE TABLE IF NOT EXISTS prop_stock (run VARCHAR(40), sku VARCHAR(100), "
    "quantity INTEGER, PRIMARY KEY (run, sku))",
]


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    """Events per key, shuffled within a key (out-of-order versions), duplicated, batched."""
    n_orders = draw(st.integers(1, 6))
    n_skus = draw(st.integers(1, 4))
    events: list[tuple[str, dict]] = []  # (partition key, spec)
    for o in range(n_orders):
        versions = list(range(1, draw(st.integers(1, 6)) + 1))
        arrival = draw(st.permutations(versions))
        for v in arrival:
            events.append((f"order-{o}", {"kind": "state", "version": v, "entity": f"o{o}"}))
    for s in range(n_skus):
        for d in range(draw(st.integers(1, 5))):
            delta = draw(st.integers(-5, 10))
            events.append((f"sku-{s}", {"kind": "delta", "n": d, "sku": f"s{s}", "delta": delta}))
    # interleave keys while keeping each key's (arrival) order
    by_key: dict[str, list[dict]] = defaultdict(list)
    for key, spec in events:
        by_key[key].append(spec)
    order = draw(st.permutations([k for k, _ in events]))
    cursor: dict[str, int] = defaultdict(int)
    stream: list[tuple[str, dict]] = []
    for key in order:
        stream.append((key, by_key[key][cursor[key]]))
        cursor[key] += 1
    # duplicates: re-send some earlier events later (redelivery by the sender)
    dup_positions = draw(st.lists(st.integers(0, len(stream) - 1), max_size=len(stream)))
    with_dups = list(stream)
    for pos in dup_positions:
        # after the original's *current* position (earlier copies shift it), so the first
        # copy the bus sees is the original and ``first_arrival`` stays the arrival order
        original_at = with_dups.index(stream[pos])
        insert_at = draw(st.integers(original_at + 1, len(with_dups)))
        with_dups.insert(insert_at, stream[pos])
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(with_dups) - 1)), max_size=5)))
    flaky = draw(st.sets(st.integers(0, len(stream) - 1), max_size=len(stream) // 2))
    replay_after_batch = draw(st.sets(st.integers(0, len(cuts)), max_size=3))
    return {
        "stream": with_dups,
        "first_arrival": stream,
        "cuts": cuts,
        "flaky": {_event_id(stream[i]) for i in flaky},
        "replay_after": replay_after_batch,
    }


def _event_id(item: tuple[str, dict]) -> str:
    key, spec = item
    suffix = spec["version"] if spec["kind"] == "state" else spec["n"]
    return f"{key}-{spec['kind']}-{suffix}"


def _to_event(run: str, item: tuple[str, dict]) -> CloudEvent:
    key, spec = item
    if spec["kind"] == "state":
        return CloudEvent.new(
            type="retailsync.order.updated",
            source=f"prop/{run}",
            id=_event_id(item),
            subject=f"{run}/order/{spec['entity']}",
            partitionkey=key,
            entityversion=spec["version"],
            data={"status": f"status-{spec['version']}"},
        )
    return CloudEvent.new(
        type="retailsync.inventory.adjusted",
        source=f"prop/{run}",
        id=_event_id(item),
        subject=f"{run}/sku/{spec['sku']}",
        partitionkey=key,
        data={"sku": spec["sku"], "delta": spec["delta"]},
    )


async def _run(url: str, scenario: dict) -> None:
    run = uuid.uuid4().hex[:12]
    handled_order: dict[str, list[str]] = defaultdict(list)
    failed_once: set[str] = set()

    async def project(event: CloudEvent, ctx) -> None:
        if event.id in scenario["flaky"] and event.id not in failed_once:
            failed_once.add(event.id)
            ctx.connection.execute(  # an effect that must roll back with the failed attempt
                sa.text("INSERT INTO prop_stock VALUES (:r, :s, 1000)"),
                {"r": run, "s": f"junk-{event.id}"},
            )
            raise TimeoutError("ERP did not answer")
        conn = ctx.connection
        if event.type == "retailsync.order.updated":
            if ctx.apply_if_newer(f"order:{event.subject}"):
                updated = conn.execute(
                    sa.text("UPDATE prop_order_state SET status=:st WHERE run=:r AND entity=:e"),
                    {"st": event.data["status"], "r": run, "e": event.subject},
                ).rowcount
                if not updated:
                    conn.execute(
                        sa.text("INSERT INTO prop_order_state VALUES (:r, :e, :st)"),
                        {"st": event.data["status"], "r": run, "e": event.subject},
                    )
        else:
            updated = conn.execute(
                sa.text("UPDATE prop_stock SET quantity = quantity + :d WHERE run=:r AND sku=:s"),
                {"d": event.data["delta"], "r": run, "s": event.data["sku"]},
            ).rowcount
            if not updated:
                conn.execute(
                    sa.text("INSERT INTO prop_stock VALUES (:r, :s, :d)"),
                    {"d": event.data["delta"], "r": run, "s": event.data["sku"]},
                )
        handled_order[event.partitionkey or ""].append(event.id)

    options = BusOptions(poll_interval=0.001, shards=4, delivery_batch_size=7)
    bus = create_backend(BackendConfig(database_url=url, options=options, worker_id=run))
    name = f"projection-{run}"
    bus.subscribe(
        Subscription(
            name,
            project,
            EventFilter(subjects=(f"{run}/*",)),
            retry=RetryPolicy(max_attempts=5, initial_backoff=0.001, max_backoff=0.002),
            start_from="latest",
        )
    )
    await bus.start()
    try:
        events = [_to_event(run, item) for item in scenario["stream"]]
        bounds = [0, *scenario["cuts"], len(events)]
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if lo < hi:
                await bus.publish(events[lo:hi])
            await bus.deliver_until_idle(timeout=20)
            if i in scenario["replay_after"]:  # redelivery of everything so far
                await bus.replay(ReplayRequest(subscriber=name))
        await bus.deliver_until_idle(timeout=20)
    finally:
        await bus.close()

    # expected: in-order, once-only application
    expected_state: dict[str, str] = {}
    expected_stock: dict[str, int] = defaultdict(int)
    for _key, spec in scenario["first_arrival"]:
        if spec["kind"] == "state":
            entity = f"{run}/order/{spec['entity']}"
            best = max(
                s["version"]
                for _, s in scenario["first_arrival"]
                if s["kind"] == "state" and s["entity"] == spec["entity"]
            )
            expected_state[entity] = f"status-{best}"
        else:
            expected_stock[spec["sku"]] += spec["delta"]
    engine = create_engine_for(url)
    with engine.connect() as conn:
        state = dict(
            conn.execute(
                sa.text("SELECT entity, status FROM prop_order_state WHERE run=:r"), {"r": run}
            ).all()
        )
        stock = dict(
            conn.execute(
                sa.text("SELECT sku, quantity FROM prop_stock WHERE run=:r"), {"r": run}
            ).all()
        )
    engine.dispose()
    assert state == expected_state
    assert stock == dict(expected_stock)
    expected_order: dict[str, list[str]] = defaultdict(list)
    for item in scenario["first_arrival"]:
        expected_order[item[0]].append(_event_id(item))
    assert dict(handled_order) == dict(expected_order)


def test_projection_equals_in_order_once_only_application(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prop.sqlite'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    with engine.begin() as conn:
        for ddl in STATE_DDL:
            conn.exec_driver_sql(ddl)
    engine.dispose()

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenarios())
    def check(scenario: dict) -> None:
        asyncio.run(_run(url, scenario))

    check()
