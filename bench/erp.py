"""ERP sandbox and JSON-RPC throughput: initialisation times and sales created+confirmed per second.

Run: ``.venv/bin/python bench/erp.py [--sales 10] [--cold]``. ``--cold`` also builds a template
in a temporary cache (30-90 s). The baseline is plain reads per second on the same server, so
the ratio says how much heavier a confirmed sale is than a read.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

from retailsync.connectors.erp.adapter import TrytonErpAdapter
from retailsync.connectors.erp.client import TrytonClient, TrytonConnection
from retailsync.db import create_engine_for, upgrade_database
from retailsync.domain.customers import Customer
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine
from retailsync.sandbox.erp import ErpSandbox, ensure_template

CUSTOMER = Customer(
    id=new_id(EntityKind.CUSTOMER),
    email="ada@example.com",
    given_name="Ada",
    created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
)


def order() -> Order:
    line = OrderLine.priced(
        line_no=1,
        sku="RS-TSHIRT-M",
        quantity=1,
        unit_price=Money.of("19.90", "EUR"),
        tax=Money.zero("EUR"),
    )
    return Order.place(
        id=new_id(EntityKind.ORDER),
        channel="bench",
        currency="EUR",
        lines=[line],
        placed_at=dt.datetime.now(dt.UTC),
        customer_id=CUSTOMER.id,
    )


async def measure(sandbox: ErpSandbox, sales: int, workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'hub.sqlite'}"
    upgrade_database(url, "erp_0001")
    connection = TrytonConnection(
        sandbox.base_url, sandbox.database, sandbox.login, sandbox.password
    )
    async with TrytonClient(connection) as client:
        adapter = TrytonErpAdapter(client, create_engine_for(url))
        await adapter.submit_order(order(), CUSTOMER)  # warm up caches
        reads = 50
        started = time.perf_counter()
        for _ in range(reads):
            await client.read("sale.sale", [1], ["state", "total_amount"])
        read_rate = reads / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(sales):
            await adapter.submit_order(order(), CUSTOMER)
        sale_rate = sales / (time.perf_counter() - started)
    print(f"reads/s (baseline)            {read_rate:8.1f}")
    print(f"sales created+confirmed/s     {sale_rate:8.2f}")
    print(f"ratio sale : read             1 : {read_rate / sale_rate:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="also time a cold template build")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as tmp:
        work = Path(tmp)
        if options.cold:
            cold = ensure_template(work / "cache")
            print(f"template build (cold)         {cold.seconds:8.1f} s")
        cached = ensure_template()
        print(
            f"template lookup (cached)      {cached.seconds * 1000:8.1f} ms"
            + (" (built now)" if cached.built else "")
        )
        sandbox = ErpSandbox(work / "run")
        started = time.perf_counter()
        sandbox.start()
        print(
            f"copy template + start server  {time.perf_counter() - started:8.2f} s"
            f"  (copy {sandbox.copy_seconds * 1000:.0f} ms)"
        )
        try:
            asyncio.run(measure(sandbox, options.sales, work))
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()
