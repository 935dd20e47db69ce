"""Stripe settings name the bad key; secrets stay secret; the form encoding is Stripe's."""

from __future__ import annotations

import pytest

from retailsync.connectors.stripe import load_stripe_settings
from retailsync.connectors.stripe.client import encode_form
from retailsync.connectors.stripe.errors import StripeConfigError


def test_errors_name_the_bad_key() -> None:
    with pytest.raises(StripeConfigError) as raised:
        load_stripe_settings({"api_key": "sk_test_x", "page_size": 500})
    message = str(raised.value)
    assert "connectors.stripe.webhook_secret" in message
    assert "connectors.stripe.page_size" in message


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"api_key": "pk_test_x", "webhook_secret": "whsec_x"}, "publishable"),
        ({"api_key": "sk_test_x", "webhook_secret": "secret"}, "whsec_"),
        (
            {"api_key": "sk_test_x", "webhook_secret": "whsec_x", "base_url": "api.stripe.com"},
            "base_url",
        ),
        (
            {
                "api_key": "sk_test_x",
                "webhook_secret": "whsec_x",
                "refund_status_events": {"succeeded": "done"},
            },
            "refund_status_events['succeeded']",
        ),
    ],
)
def test_values_are_checked(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(StripeConfigError, match=fragment.replace("[", r"\[")):
        load_stripe_settings(values)


def test_secrets_never_show() -> None:
    settings = load_stripe_settings({"api_key": "sk_live_abc", "webhook_secret": "whsec_def"})
    assert "sk_live_abc" not in repr(settings) and "whsec_def" not in str(settings)


def test_form_encoding_nests_like_stripe() -> None:
    assert encode_form(
        {
            "amount": 500,
            "metadata": {"order_id": "1001"},
            "expand": ["charge"],
            "x": None,
            "flag": True,
        }
    ) == [
        ("amount", "500"),
        ("metadata[order_id]", "1001"),
        ("expand[0]", "charge"),
        ("flag", "true"),
    ]
