"""NATS JetStream bus throughput next to plain JetStream, measured in the same run.

Prints events/s for the raw JetStream ceiling, the backend's partitioned topology without
SQL, and the full pipeline (publish -> durable -> delivered -> handled, SQL inbox included),
each with its ratio to the ceiling (goal for the pipeline: >= 0.5).

    python bench/bus_nats.py [--events 10000] [--batch 500] [--partitions 16]
                             [--nats URL] [--postgres ADMIN_URL | --sqlite]

NATS defaults to RETAILSYNC_TEST_NATS_URL or 127.0.0.1:4222 (else a private nats-server);
the consumer side runs on a scratch PostgreSQL database (created and dropped) unless
``--sqlite`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from retailsync.bus.backends.nats_bench import measure
from retailsync.db import upgrade_database
from retailsync.testing import ensure_nats, ensure_postgres


@contextlib.contextmanager
def scratch_database(use_sqlite: bool, postgres: str | None) -> Iterator[str]:
    if use_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
            upgrade_database(url)
            yield url
        return
    server = ensure_postgres(postgres, durable=True)
    name = f"bench_nats_{uuid.uuid4().hex[:8]}"
    url = server.create_database(name)
    try:
        upgrade_database(url)
        yield url
    finally:
        server.drop_database(name)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--nats", default=None)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    server = ensure_nats(args.nats)
    try:
        with scratch_database(args.sqlite, args.postgres) as url:
            result = asyncio.run(
                measure(
                    server.url,
                    url,
                    events=args.events,
                    batch=args.batch,
                    partitions=args.partitions,
                )
            )
    finally:
        server.stop()
    print(f"consumer side: {'SQLite' if args.sqlite else 'PostgreSQL'}")
    for line in result.lines():
        print(line)
    verdict = "meets" if result.ratio >= 0.5 else "below"
    print(f"pipeline / raw = {result.ratio:.2f} ({verdict} the 0.5 goal)")


if __name__ == "__main__":
    main()
