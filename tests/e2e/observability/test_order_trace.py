"""One order from checkout to refund, across a restart of the hub: one trace, every hop."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from retailsync.db import create_engine_for
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.observability.traces import load_trace

JOURNEY = Path(__file__).with_name("hub_journey.py")


@pytest.fixture
def vendor() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A stand-in for the ERP, the storefront and the payment service: records each call."""
    calls: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append((self.path, self.headers.get("traceparent")))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _run_hub(phase: str, database_url: str, vendor_url: str, state: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(JOURNEY), phase, database_url, vendor_url, json.dumps(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_order_trace_lists_every_hop_in_order_across_a_restart(
    sqlite_url: str, vendor: tuple[str, list[tuple[str, str | None]]]
) -> None:
    vendor_url, calls = vendor
    trace_id = secrets.token_hex(16)
    state = {
        "trace_id": trace_id,
        "span_id": secrets.token_hex(8),
        "order_id": new_id(EntityKind.ORDER),
        "rma_id": new_id(EntityKind.RETURN),
        "refund_id": new_id(EntityKind.REFUND),
        "t0": (datetime.now(UTC) - timedelta(days=6)).isoformat(),
    }

    _run_hub("sell", sqlite_url, vendor_url, state)  # this hub process ends here
    _run_hub("return", sqlite_url, vendor_url, state)  # a new process, same database

    engine = create_engine_for(sqlite_url)
    try:
        trace = load_trace(engine, order_id=state["order_id"])
    finally:
        engine.dispose()
    hops = [(e.kind.value, e.system, e.operation, e.status) for e in trace.entries]
    hub = "/retailsync/workflows"
    shop = "retailsync/connectors/shopify"
    erp = "urn:retailsync:erp:tryton"
    assert hops == [
        ("inbound", "shopify", "orders/create", "accepted"),
        ("event", shop, "retailsync.order.created", "stored"),
        ("outbound_call", "erp", "submit_order", "ok"),
        ("event", erp, "retailsync.shipment.dispatched", "stored"),
        ("outbound_call", "commerce", "fulfil_order", "ok"),
        # --- the hub restarted here ---
        ("inbound", "zendesk", "ticket.return_requested", "accepted"),
        ("event", hub, "retailsync.return.requested", "stored"),
        ("workflow_step", "erp", "return_to_refund.authorize_return_in_erp", "ok"),
        ("outbound_call", "erp", "create_return", "ok"),
        ("workflow_step", "erp", "return_to_refund.receive_return_in_erp", "ok"),
        ("outbound_call", "erp", "receive_return", "ok"),
        ("workflow_step", "payments", "return_to_refund.issue_refund", "ok"),
        ("outbound_call", "payments", "refund", "ok"),
        # what the steps emitted, stored once the delivery committed
        ("event", hub, "retailsync.refund.requested", "stored"),
        ("event", hub, "retailsync.return.authorized", "stored"),
        ("event", hub, "retailsync.return.received", "stored"),
        ("event", hub, "retailsync.refund.completed", "stored"),
    ]
    assert {e.correlation_id for e in trace.entries} == {trace_id}
    assert trace.correlation_ids == (trace_id,)

    # Causation: each event the hub emitted names the event whose handling caused it.
    events = {e.operation: e for e in trace.entries if e.kind.value == "event"}
    created = events["retailsync.order.created"]
    requested = events["retailsync.return.requested"]
    assert events["retailsync.shipment.dispatched"].causation_id == created.event_id
    for caused in ("refund.requested", "return.authorized", "return.received", "refund.completed"):
        assert events[f"retailsync.{caused}"].causation_id == requested.event_id

    # Every vendor call carried a traceparent of the same trace.
    assert [path for path, _ in calls] == [
        "/erp/submit_order",
        "/commerce/fulfil_order",
        "/erp/create_return",
        "/erp/receive_return",
        "/payments/refund",
    ]
    assert {header.split("-")[1] for _, header in calls if header} == {trace_id}
    assert all(header for _, header in calls)
