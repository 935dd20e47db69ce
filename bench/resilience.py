"""Overhead of the resilience wrapper per call, against a bare call measured in the same run.

Three comparisons, each printed with its ratio:
1. a no-op coroutine, bare vs through ``Downstream.call`` (in-process token bucket);
2. an HTTP GET to a local server (httpx), bare vs wrapped — the realistic case;
3. the same GET with the rate limit shared through PostgreSQL (scale-out mode), when a
   server answers at ``RETAILSYNC_BENCH_POSTGRES_URL`` (default postgres@127.0.0.1:5432).

Run: ``.venv/bin/python bench/resilience.py``
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import sqlalchemy as sa

from retailsync.db import create_engine_for, upgrade_database
from retailsync.resilience import (
    BulkheadPolicy,
    Downstreams,
    Lane,
    RateLimitPolicy,
    ResiliencePolicy,
    ResilienceSettings,
)

SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def order(request):
    return JSONResponse({"id": request.path_params["order_id"], "status": "shipped"})
app = Starlette(routes=[Route("/orders/{order_id}", order)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

# Limits far above what the benchmark reaches: we measure the machinery, not the throttling.
POLICY = ResiliencePolicy(
    bulkhead=BulkheadPolicy(max_concurrent=64),
    rate_limit=RateLimitPolicy(limit=1_000_000, burst=100_000),
)


async def per_call_seconds(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - started) / calls


async def compare(
    bare: Callable[[], Awaitable[object]],
    wrapped: Callable[[], Awaitable[object]],
    calls: int,
    rounds: int = 5,
) -> tuple[float, float]:
    """Best per-call time of each over interleaved rounds (robust to a busy machine)."""
    await per_call_seconds(bare, min(200, calls))
    await per_call_seconds(wrapped, min(200, calls))
    bare_times, wrapped_times = [], []
    for _ in range(rounds):
        bare_times.append(await per_call_seconds(bare, calls // rounds))
        wrapped_times.append(await per_call_seconds(wrapped, calls // rounds))
    return min(bare_times), min(wrapped_times)


def report(label: str, bare: float, wrapped: float) -> None:
    print(
        f"{label:<38} bare {bare * 1e6:9.1f} µs   wrapped {wrapped * 1e6:9.1f} µs   "
        f"overhead {(wrapped - bare) * 1e6:8.1f} µs   ratio {wrapped / bare:6.2f}x"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_admin_url() -> str | None:
    url = os.environ.get(
        "RETAILSYNC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return url
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


async def main(port: int) -> None:
    settings = ResilienceSettings(downstreams={"erp": POLICY})
    embedded = Downstreams(settings, engine=None)

    async def noop() -> int:
        return 1

    calls = 20_000
    bare, wrapped = await compare(noop, lambda: embedded.erp.call("noop", noop), calls)
    report("no-op coroutine (in-process bucket)", bare, wrapped)
    bare, agent = await compare(
        noop, lambda: embedded.erp.call("noop", noop, lane=Lane.AGENT), calls
    )
    report("no-op coroutine, agent lane", bare, agent)

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    await client.get("/orders/warmup")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

            async def get_order() -> httpx.Response:
                return await client.get("/orders/SO-1")

            http_calls = 2_000
            bare_http, wrapped_http = await compare(
                get_order, lambda: embedded.erp.call("get_order", get_order), http_calls
            )
            report("HTTP GET (in-process bucket)", bare_http, wrapped_http)

            admin_url = postgres_admin_url()
            if admin_url is None:
                print("HTTP GET (bucket shared in PostgreSQL)  not measured: no PostgreSQL")
                return
            name = f"rs_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine_for(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = str(sa.engine.make_url(admin_url).set(database=name).render_as_string(False))
            engine = create_engine_for(url)
            try:
                upgrade_database(url)
                shared = Downstreams(settings, engine=engine)
                assert shared.shares_rate_limits
                bare_pg, wrapped_pg = await compare(
                    get_order, lambda: shared.erp.call("get_order", get_order), http_calls // 2
                )
                report("HTTP GET (bucket shared in PostgreSQL)", bare_pg, wrapped_pg)
                await shared.close()
            finally:
                engine.dispose()
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    finally:
        await embedded.close()


if __name__ == "__main__":
    server_port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(server_port)])
    try:
        asyncio.run(main(server_port))
    finally:
        server.terminate()
        server.wait()
