"""Fixtures: the Stripe sandbox on a loopback port and the connector pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from stripe_harness import RunningStripe

from retailsync.connectors.stripe import StripePayments
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.stripe import StripeSandbox, create_stripe_sandbox


@pytest.fixture
def stripe_sandbox() -> Iterator[RunningStripe]:
    state = StripeSandbox()
    with SandboxServer(create_stripe_sandbox(state)) as server:
        yield RunningStripe(state, server.base_url)


@pytest.fixture
async def payments(stripe_sandbox: RunningStripe) -> AsyncIterator[StripePayments]:
    async with StripePayments(stripe_sandbox.settings(page_size=2)) as adapter:
        yield adapter
