"""The Stripe sandbox's control API (used by tests and the demo) over HTTP."""

from __future__ import annotations

import httpx
from stripe_harness import RunningStripe

from retailsync.sandbox.stripe import SANDBOX_API_KEY


def test_seed_faults_and_state_over_http(stripe_sandbox: RunningStripe) -> None:
    """Stripe API reference, "Errors" (500 api_error body and 429 rate limit), reproduced on
    demand by the control API."""
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    with httpx.Client(base_url=stripe_sandbox.base_url) as http:
        intent = http.post("/_sandbox/payment_intents", json={"amount": 1200}).json()
        assert intent["status"] == "succeeded" and intent["latest_charge"].startswith("ch_")
        http.post("/_sandbox/faults", json={"fail_next": 1, "rate_limit_next": 1})
        limited = http.get(f"/v1/payment_intents/{intent['id']}", headers=auth)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert limited.json()["error"]["code"] == "rate_limit"
        failed = http.get(f"/v1/payment_intents/{intent['id']}", headers=auth)
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
        assert failed.headers["Request-Id"].startswith("req_")
        ok = http.get(f"/v1/payment_intents/{intent['id']}", headers=auth)
        assert ok.status_code == 200 and ok.json()["amount"] == 1200
        unauthenticated = http.get(f"/v1/payment_intents/{intent['id']}")
        assert unauthenticated.status_code == 401
        assert http.get("/_sandbox/state").json()["payment_intents"] == 1
