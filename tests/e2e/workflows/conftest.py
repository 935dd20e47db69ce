"""Workflows end to end: the live Tryton ERP plus the Stripe, Zendesk and WMS sandboxes.

The ERP fixtures are the session-scoped ones of ``tests/e2e/erp`` (one trytond per session,
on a copy of the cached template); the SaaS sandboxes run on loopback ports. Each test gets
a fresh durable runtime (its own SQLite file) wired to the real adapters.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

ERP_E2E = Path(__file__).resolve().parents[1] / "erp"
if str(ERP_E2E) not in sys.path:
    sys.path.insert(0, str(ERP_E2E))

from erp_e2e_support import SqlRecordingPublisher  # noqa: E402

from retailsync.config import Settings  # noqa: E402
from retailsync.connectors.erp.adapter import TrytonErpAdapter  # noqa: E402
from retailsync.connectors.stripe import StripePayments, load_stripe_settings  # noqa: E402
from retailsync.connectors.wms.client import WmsClient  # noqa: E402
from retailsync.connectors.wms.config import WmsSettings  # noqa: E402
from retailsync.connectors.wms.outbound import WmsWarehouse  # noqa: E402
from retailsync.connectors.zendesk.client import ZendeskClient  # noqa: E402
from retailsync.connectors.zendesk.config import ZendeskSettings  # noqa: E402
from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk  # noqa: E402
from retailsync.sandbox.server import SandboxServer  # noqa: E402
from retailsync.sandbox.stripe import (  # noqa: E402
    SANDBOX_API_KEY,
    SANDBOX_WEBHOOK_SECRET,
    StripeSandbox,
    create_stripe_sandbox,
)
from retailsync.sandbox.wms import WmsSandbox  # noqa: E402
from retailsync.sandbox.zendesk import ZendeskSandbox  # noqa: E402
from retailsync.workflows.runtime import (  # noqa: E402
    RetrySchedule,
    WorkflowOptions,
    WorkflowRuntime,
    launch_workflows,
    shutdown_workflows,
)
from retailsync.workflows.steps import WorkflowPorts  # noqa: E402


def _erp_fixtures() -> object:
    spec = importlib.util.spec_from_file_location("erp_e2e_conftest", ERP_E2E / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_erp = _erp_fixtures()
erp_sandbox = _erp.erp_sandbox  # type: ignore[attr-defined]
erp_client = _erp.erp_client  # type: ignore[attr-defined]
erp_engine = _erp.erp_engine  # type: ignore[attr-defined]
erp_adapter = _erp.erp_adapter  # type: ignore[attr-defined]
recording_publisher = _erp.recording_publisher  # type: ignore[attr-defined]


@dataclass
class Sandboxes:
    """The SaaS sandboxes' state, for arranging and for asserting the final state."""

    stripe: StripeSandbox
    zendesk: ZendeskSandbox
    wms: WmsSandbox


@pytest.fixture(scope="session")
def sandbox_urls() -> Iterator[tuple[Sandboxes, dict[str, str]]]:
    stripe = StripeSandbox()
    zendesk = ZendeskSandbox(email="agent@example.com", api_token="sandbox-token")
    wms = WmsSandbox(api_key="wms-key", webhook_secret="wms-secret")
    with (
        SandboxServer(create_stripe_sandbox(stripe)) as stripe_server,
        SandboxServer(zendesk.app) as zendesk_server,
        SandboxServer(wms.app) as wms_server,
    ):
        yield (
            Sandboxes(stripe, zendesk, wms),
            {
                "stripe": stripe_server.base_url,
                "zendesk": zendesk_server.base_url,
                "wms": wms_server.base_url,
            },
        )


@pytest.fixture
async def live(
    tmp_path: Path,
    sandbox_urls: tuple[Sandboxes, dict[str, str]],
    erp_adapter: TrytonErpAdapter,
    recording_publisher: SqlRecordingPublisher,
) -> AsyncIterator[tuple[WorkflowRuntime, Sandboxes]]:
    """A launched runtime whose ports are the live ERP adapter and the sandbox adapters."""
    sandboxes, urls = sandbox_urls
    stripe_settings = load_stripe_settings(
        {
            "api_key": SANDBOX_API_KEY,
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
            "base_url": urls["stripe"],
            "backoff_seconds": 0.01,
            "timeout_seconds": 10,
        }
    )
    zendesk_settings = ZendeskSettings.model_validate(
        {
            "base_url": urls["zendesk"],
            "email": "agent@example.com",
            "api_token": SecretStr("sandbox-token"),
            "webhook_secret": SecretStr("zendesk-secret"),
            "backoff_seconds": 0.01,
        }
    )
    wms_settings = WmsSettings.model_validate(
        {
            "base_url": urls["wms"],
            "api_key": SecretStr("wms-key"),
            "webhook_secret": SecretStr("wms-secret"),
            "backoff_seconds": 0.01,
        }
    )
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hub.sqlite'}", worker_id="e2e")
    async with (
        StripePayments(stripe_settings) as payments,
        ZendeskClient(zendesk_settings) as zendesk_client,
        WmsClient(wms_settings) as wms_client,
    ):
        ports = WorkflowPorts(
            erp=erp_adapter,
            payments=payments,
            service_desk=ZendeskServiceDesk(zendesk_client, zendesk_settings),
            warehouse=WmsWarehouse(wms_client, wms_settings),
            publisher=recording_publisher,
        )
        options = WorkflowOptions(retry=RetrySchedule(attempts=3, first_delay_seconds=0.05))
        runtime = await launch_workflows(settings, ports, options)
        try:
            yield runtime, sandboxes
        finally:
            shutdown_workflows()
