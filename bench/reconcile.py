"""Inventory reconciliation at scale: N positions x 3 sources, wall time and peak memory.

Run: ``.venv/bin/python bench/reconcile.py [--positions 1000000] [--drift 0.005]``.

Three sorted CSV files (ERP stock, warehouse on hand, storefront levels) are generated with a
small share of drift. Each phase runs in its own process so its peak RSS is its own:

* baseline — a plain ``heapq.merge`` of the same three files, splitting each line, nothing else;
* reconcile — the real engine: paged CSV sources, streaming k-way merge, drift classification,
  the drift report written to SQLite in batches, correction events built with derived ids and
  handed to a publisher, exception tickets handed to a sink (both count and drop them here).

The ratio is reconcile wall time / baseline wall time. Goal: <= 15 s and <= 500 MB for 1M.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

GOAL_SECONDS = 15.0
GOAL_MB = 500.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(folder: Path, positions: int, drift: float, seed: int = 7) -> dict[str, int]:
    """Write erp.csv, wms.csv and storefront.csv, sorted by ``sku@location``."""
    rng = random.Random(seed)
    locations = ("DC1", "ST01", "ST02", "ST03")
    skus = (positions + len(locations) - 1) // len(locations)
    planted = {"on_hand": 0, "level": 0, "missing_wms": 0}
    with (
        (folder / "erp.csv").open("w") as erp,
        (folder / "wms.csv").open("w") as wms,
        (folder / "storefront.csv").open("w") as shop,
    ):
        erp.write("sku,location,on_hand,reserved,allocated,in_transit\n")
        wms.write("sku,location,on_hand,reserved,allocated,in_transit\n")
        shop.write("sku,location,available\n")
        written = 0
        for n in range(skus):
            sku = f"SKU-{n:08d}"
            for location in locations:
                if written >= positions:
                    break
                written += 1
                on_hand = rng.randint(0, 500)
                reserved = rng.randint(0, min(on_hand, 20))
                allocated = rng.randint(0, 10)
                in_transit = rng.randint(0, 30) if rng.random() < 0.2 else 0
                erp.write(f"{sku},{location},{on_hand},{reserved},0,{in_transit}\n")
                roll = rng.random()
                wms_on_hand = on_hand
                if roll < drift:
                    wms_on_hand = max(0, on_hand + rng.choice((-3, -1, 1, 2, 40)))
                    planted["on_hand"] += wms_on_hand != on_hand
                if drift <= roll < drift * 1.2:
                    planted["missing_wms"] += 1
                else:
                    wms.write(f"{sku},{location},{wms_on_hand},0,{allocated},0\n")
                    allocated_seen = allocated
                if drift <= roll < drift * 1.2:
                    allocated_seen = 0
                available = max(0, on_hand - reserved - allocated_seen + in_transit)
                if 2 * drift <= roll < 3 * drift:
                    available += rng.randint(1, 9)
                    planted["level"] += 1
                shop.write(f"{sku},{location},{available}\n")
    return planted


def _lines(path: Path) -> Iterator[tuple[str, list[str]]]:
    with path.open() as handle:
        next(handle)
        for line in handle:
            parts = line.rstrip("\n").split(",")
            yield f"{parts[0]}@{parts[1]}", parts


def baseline(folder: Path) -> dict[str, float]:
    """A plain sorted merge of the three files: the floor for reading and merging them."""
    started = time.perf_counter()
    keys = 0
    last = None
    merged = heapq.merge(
        *(_lines(folder / name) for name in ("erp.csv", "wms.csv", "storefront.csv")),
        key=lambda item: item[0],
    )
    for key, _parts in merged:
        if key != last:
            keys += 1
            last = key
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "keys": keys}


class _CountingPublisher:
    def __init__(self) -> None:
        self.events = 0
        self.ids: set[str] = set()

    async def publish(self, events: Sequence[object]) -> None:
        self.events += len(events)


class _CountingSink:
    def __init__(self) -> None:
        self.tickets = 0

    async def __call__(self, tickets: Sequence[object]) -> None:
        self.tickets += len(tickets)


def reconcile(folder: Path) -> dict[str, float]:
    """The engine end to end over the same files, report stored in SQLite."""
    from retailsync.db import create_engine_for, upgrade_database
    from retailsync.reconcile.engine import run_reconciliation
    from retailsync.reconcile.sources import csv_level_source, csv_stock_source
    from retailsync.reconcile.store import ReportStore

    url = f"sqlite:///{folder / 'hub.sqlite'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    publisher = _CountingPublisher()
    sink = _CountingSink()
    started = time.perf_counter()
    summary = asyncio.run(
        run_reconciliation(
            "inventory",
            {
                "erp": csv_stock_source(folder / "erp.csv"),
                "wms": csv_stock_source(folder / "wms.csv"),
                "storefront": csv_level_source(folder / "storefront.csv"),
            },
            store=ReportStore(engine),
            publisher=publisher,
            open_exception=sink,
            trigger="bench",
        )
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "keys": summary.keys_compared,
        "drifts": summary.drift_count,
        "corrections": publisher.events,
        "exceptions": sink.tickets,
        "counts": summary.counts,  # type: ignore[dict-item]
    }


def _phase(name: str, folder: Path) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--folder", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--drift", type=float, default=0.005, help="share of drifted positions")
    parser.add_argument("--phase", choices=("baseline", "reconcile"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        work = baseline if args.phase == "baseline" else reconcile
        print(json.dumps(work(args.folder)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        planted = generate(folder, args.positions, args.drift)
        print(
            f"generated {args.positions:,} positions x 3 sources in "
            f"{time.perf_counter() - started:.1f} s; planted {planted}"
        )
        base = _phase("baseline", folder)
        result = _phase("reconcile", folder)
    base_s, rec_s = float(base["seconds"]), float(result["seconds"])  # type: ignore[arg-type]
    rec_mb = float(result["peak_mb"])  # type: ignore[arg-type]
    print(f"baseline  heapq.merge of 3 files: {base_s:6.2f} s  peak {base['peak_mb']:.0f} MB")
    print(
        f"reconcile engine + report:        {rec_s:6.2f} s  peak {rec_mb:.0f} MB  "
        f"keys {result['keys']:,}  drifts {result['drifts']:,}  "
        f"corrections {result['corrections']:,}  exceptions {result['exceptions']:,}"
    )
    print(f"drift by kind: {result['counts']}")
    print(f"ratio reconcile / baseline: {rec_s / base_s:.2f}x")
    verdict = "met" if rec_s <= GOAL_SECONDS and rec_mb <= GOAL_MB else "NOT met"
    print(f"goal <= {GOAL_SECONDS:.0f} s and <= {GOAL_MB:.0f} MB: {verdict}")


if __name__ == "__main__":
    main()
