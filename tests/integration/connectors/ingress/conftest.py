"""Fixtures: the webhook ingress with the Stripe receiver, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retailsync.connectors.stripe import StripeWebhookReceiver, load_stripe_settings
from retailsync.sandbox.stripe import SANDBOX_WEBHOOK_SECRET
from retailsync.testing.ingress import Ingress, running_ingress

STRIPE_SETTINGS = load_stripe_settings(
    {"api_key": "sk_test_sandbox", "webhook_secret": SANDBOX_WEBHOOK_SECRET}
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each ingress test runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def ingress(database_url: str) -> Iterator[Ingress]:
    with running_ingress(database_url, [StripeWebhookReceiver(STRIPE_SETTINGS)]) as running:
        yield running
