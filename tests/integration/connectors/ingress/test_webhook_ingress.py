"""POST /v1/webhooks/{connector}: authenticate, dedupe, map, publish before 2xx (SQLite + PG)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

import httpx

from retailsync.sandbox.stripe import SANDBOX_WEBHOOK_SECRET, sign_stripe_payload
from retailsync.testing.ingress import Ingress


def refund_event(
    *, status: str = "succeeded", event_type: str = "refund.updated", refund_id: str = "re_1"
) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": event_type,
        "data": {
            "object": {
                "id": refund_id,
                "object": "refund",
                "amount": 1250,
                "currency": "eur",
                "charge": "ch_1",
                "payment_intent": "pi_1",
                "created": int(time.time()),
                "metadata": {},
                "status": status,
            }
        },
    }


def post(
    ingress: Ingress,
    event: dict[str, Any] | bytes,
    *,
    timestamp: int | None = None,
    secret: str = SANDBOX_WEBHOOK_SECRET,
    connector: str = "stripe",
    signature: str | None = None,
) -> httpx.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature or sign_stripe_payload(body, secret, stamp)
    return httpx.post(f"{ingress.url}/{connector}", content=body, headers=headers)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    return problem


def test_a_signed_delivery_is_published_before_the_2xx(ingress: Ingress) -> None:
    event = refund_event()
    response = post(ingress, event)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "published"
    assert [e.type for e in ingress.publisher.events] == ["retailsync.refund.completed"]
    [row] = ingress.deliveries()
    assert (row.connector, row.delivery_id, row.status) == ("stripe", event["id"], "published")
    assert row.event_count == 1


def test_the_same_delivery_twice_publishes_one_event(ingress: Ingress) -> None:
    event = refund_event()
    first = post(ingress, event)
    # Stripe re-signs each retry with a new timestamp; the event id stays the same.
    second = post(ingress, event, timestamp=int(time.time()) + 5)
    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    assert len(ingress.publisher.events) == 1
    assert len(ingress.deliveries()) == 1


def test_a_forged_signature_is_rejected_audited_and_nothing_is_published(
    ingress: Ingress,
) -> None:
    response = post(ingress, refund_event(), secret="whsec_attacker")
    problem = assert_problem(response, 401)
    assert problem["reason"] == "bad-signature"
    [rejection] = ingress.rejections()
    assert (rejection.connector, rejection.reason) == ("stripe", "bad-signature")
    assert rejection.remote_addr == "127.0.0.1"
    assert len(rejection.headers_digest) == 64
    assert ingress.publisher.events == []
    assert ingress.deliveries() == []


def test_a_missing_signature_is_rejected(ingress: Ingress) -> None:
    body = json.dumps(refund_event()).encode()
    response = httpx.post(f"{ingress.url}/stripe", content=body)
    assert assert_problem(response, 401)["reason"] == "missing-signature"
    assert [r.reason for r in ingress.rejections()] == ["missing-signature"]


def test_a_stale_replay_of_a_published_delivery_is_rejected(ingress: Ingress) -> None:
    event = refund_event()
    assert post(ingress, event).status_code == 200
    replay = post(ingress, event, timestamp=int(time.time()) - 3600)
    assert assert_problem(replay, 400)["reason"] == "stale-timestamp"
    assert [r.reason for r in ingress.rejections()] == ["stale-timestamp"]
    assert len(ingress.publisher.events) == 1


def test_an_unknown_connector_is_a_404_problem(ingress: Ingress) -> None:
    response = post(ingress, refund_event(), connector="paypal")
    problem = assert_problem(response, 404)
    assert "paypal" in problem["detail"] and "stripe" in problem["detail"]
    assert [r.reason for r in ingress.rejections()] == ["unknown-connector"]


def test_a_body_over_the_limit_is_a_413_problem(ingress: Ingress) -> None:
    body = b'{"pad": "' + b"x" * (70 * 1024) + b'"}'
    response = post(ingress, body)
    assert_problem(response, 413)
    assert [r.reason for r in ingress.rejections()] == ["body-too-large"]
    assert ingress.publisher.events == []


def test_an_unmappable_payload_is_kept_handed_over_and_answered_422(ingress: Ingress) -> None:
    event = refund_event(status="frozen")  # not in the refund status table
    body = json.dumps(event).encode()
    response = post(ingress, body)
    problem = assert_problem(response, 422)
    assert "frozen" in problem["detail"]
    [row] = ingress.deliveries()
    assert row.status == "unmappable"
    assert bytes(row.raw_body) == body
    assert "frozen" in row.error
    [(connector, delivery_id, raw, _error)] = ingress.unmappable
    assert (connector, delivery_id, raw) == ("stripe", event["id"], body)
    # The vendor retries: same answer, but handed over only once.
    assert_problem(post(ingress, body), 422)
    assert len(ingress.unmappable) == 1
    assert ingress.publisher.events == []


def test_an_event_the_hub_does_not_listen_to_is_acknowledged_without_events(
    ingress: Ingress,
) -> None:
    event = refund_event()
    event["type"] = "customer.created"
    response = post(ingress, event)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert ingress.publisher.events == []
    assert [row.status for row in ingress.deliveries()] == ["ignored"]


def test_when_publishing_fails_the_vendor_gets_503_and_its_retry_publishes(
    ingress: Ingress,
) -> None:
    ingress.publisher.fail_next = 1
    event = refund_event()
    failed = post(ingress, event)
    assert_problem(failed, 503)
    assert failed.headers["Retry-After"] == "30"
    assert [row.status for row in ingress.deliveries()] == ["received"]
    retried = post(ingress, event)
    assert retried.status_code == 200
    assert retried.json()["status"] == "published"
    assert len(ingress.publisher.events) == 1


def test_the_raw_body_of_accepted_deliveries_is_not_kept(ingress: Ingress) -> None:
    event = refund_event()
    post(ingress, event)
    [row] = ingress.deliveries()
    assert row.raw_body is None
    assert row.body_sha256 == hashlib.sha256(json.dumps(event).encode()).hexdigest()


async def test_concurrent_copies_of_one_delivery_yield_one_event_id(ingress: Ingress) -> None:
    """Vendors may retry while the first attempt is still running: every copy is answered 2xx,
    one delivery row is kept, and every published copy carries the same event id (the bus
    stores an event id once)."""
    event = refund_event()
    body = json.dumps(event).encode()
    headers = {
        "Stripe-Signature": sign_stripe_payload(body, SANDBOX_WEBHOOK_SECRET, int(time.time()))
    }
    async with httpx.AsyncClient(base_url=ingress.url) as vendor:
        answers = await asyncio.gather(
            *(vendor.post("/stripe", content=body, headers=headers) for _ in range(6))
        )
    assert {answer.status_code for answer in answers} == {200}
    assert len(ingress.deliveries()) == 1
    assert ingress.deliveries()[0].status == "published"
    assert len({e.id for e in ingress.publisher.events}) == 1
