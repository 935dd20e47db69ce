"""The order-trace journey: a live Tryton ERP, the four SaaS sandboxes, a real hub process.

The ERP is the session-scoped ``erp_sandbox`` of ``tests/e2e/erp`` (one trytond per session,
on a copy of the cached template). The sandboxes run here on loopback ports, recorded
(``journey_support``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journey_support import (
    WMS_KEY,
    WMS_SECRET,
    ZENDESK_EMAIL,
    ZENDESK_TOKEN,
    Recording,
    VendorCall,
    Vendors,
)

from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import ShopifySandbox, create_shopify_sandbox
from retailsync.sandbox.stripe import StripeSandbox, create_stripe_sandbox
from retailsync.sandbox.wms import WmsSandbox
from retailsync.sandbox.zendesk import ZendeskSandbox

ERP_E2E = Path(__file__).resolve().parents[1] / "erp"
if str(ERP_E2E) not in sys.path:
    sys.path.insert(0, str(ERP_E2E))


def _erp_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("erp_e2e_conftest", ERP_E2E / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


erp_sandbox = _erp_fixtures().erp_sandbox


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    calls: list[VendorCall] = []
    shopify = ShopifySandbox()
    stripe = StripeSandbox()
    zendesk = ZendeskSandbox(email=ZENDESK_EMAIL, api_token=ZENDESK_TOKEN)
    wms = WmsSandbox(api_key=WMS_KEY, webhook_secret=WMS_SECRET)
    apps = {
        "shopify": create_shopify_sandbox(shopify),
        "stripe": create_stripe_sandbox(stripe),
        "zendesk": zendesk.app,
        "wms": wms.app,
    }
    servers = {name: SandboxServer(Recording(app, name, calls)) for name, app in apps.items()}
    try:
        urls = {name: server.start().base_url for name, server in servers.items()}
        yield Vendors(shopify, stripe, zendesk, wms, urls, calls)
    finally:
        for server in servers.values():
            server.stop()
