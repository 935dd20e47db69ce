"""Problem documents and the header digest used by the webhook ingress."""

from __future__ import annotations

import json

from retailsync.connectors.ingress import PROBLEM_CONTENT_TYPE, headers_digest, problem_response


def test_problem_documents_follow_rfc_9457() -> None:
    response = problem_response(
        422,
        "webhook-unmappable",
        "Webhook payload cannot be mapped",
        "missing id",
        instance="/v1/webhooks/stripe",
        delivery_id="evt_1",
    )
    assert response.status_code == 422
    assert response.media_type == PROBLEM_CONTENT_TYPE == "application/problem+json"
    body = json.loads(response.body)
    assert body == {
        "type": "/problems/webhook-unmappable",
        "title": "Webhook payload cannot be mapped",
        "status": 422,
        "detail": "missing id",
        "instance": "/v1/webhooks/stripe",
        "delivery_id": "evt_1",
    }


def test_the_header_digest_ignores_order_and_case_but_not_values() -> None:
    a = headers_digest({"Stripe-Signature": "t=1,v1=aa", "Content-Type": "application/json"})
    b = headers_digest({"content-type": "application/json", "stripe-signature": "t=1,v1=aa"})
    c = headers_digest({"content-type": "application/json", "stripe-signature": "t=1,v1=ab"})
    assert a == b != c
    assert len(a) == 64 and "v1=aa" not in a
