"""Every system of the demo on loopback ports, and the hub's settings pointing at them.

The Tryton ERP runs from the cached template (built once, ~30-90 s; then a 10 ms copy and a
~3 s start); Stripe, Shopify, Zendesk and the WMS are the in-memory sandboxes of
:mod:`retailsync.sandbox`, each on a free port with its webhooks aimed at the hub's
``/v1/webhooks/<connector>``. The hub itself runs embedded on SQLite under the demo's data
directory (``./var/demo`` unless ``RETAILSYNC_DEMO_DIR`` says otherwise).

Every run starts the demo's systems from the same clean state (a fresh copy of the ERP
template, a fresh hub database, empty sandboxes), so a second run never piles data on top of
the first; only the ERP template and the demo's API key carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from retailsync.config import ApiSettings, LogSettings, Settings
from retailsync.connectors.erp.config import ErpSettings
from retailsync.connectors.settings import ConnectorsSettings
from retailsync.connectors.shopify.config import ShopifySettings
from retailsync.connectors.stripe.config import load_stripe_settings
from retailsync.connectors.wms.config import WmsSettings
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.demo.errors import DemoError, PortInUse
from retailsync.sandbox.erp import ErpSandbox
from retailsync.sandbox.server import SandboxServer
from retailsync.sandbox.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_SHOP_DOMAIN,
    SANDBOX_WEBHOOK_SECRET,
    ShopifySandbox,
    create_shopify_sandbox,
)
from retailsync.sandbox.stripe import SANDBOX_API_KEY, StripeSandbox, create_stripe_sandbox
from retailsync.sandbox.stripe import SANDBOX_WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from retailsync.sandbox.wms import WmsSandbox
from retailsync.sandbox.zendesk import WebhookTarget, ZendeskSandbox

DEMO_DIR_ENV = "RETAILSYNC_DEMO_DIR"
DEFAULT_DEMO_DIR = Path("var") / "demo"
HOST = "127.0.0.1"
DEFAULT_HUB_PORT = 8000

# Loopback-only sandbox credentials (never real secrets).
ZENDESK_EMAIL = "agent@demo.invalid"
ZENDESK_TOKEN = "demo-zendesk-token"
ZENDESK_WEBHOOK_SECRET = "demo-zendesk-webhook-secret"
WMS_API_KEY = "demo-wms-key"
WMS_WEBHOOK_SECRET = "demo-wms-webhook-secret"


def demo_dir() -> Path:
    """``$RETAILSYNC_DEMO_DIR`` or ``./var/demo``, as an absolute path."""
    return Path(os.environ.get(DEMO_DIR_ENV) or DEFAULT_DEMO_DIR).resolve()


def derived_secret(root: Path, purpose: str) -> str:
    """A secret that is the same for the same demo directory (so re-runs reuse it)."""
    material = f"retailsync-demo\x1f{purpose}\x1f{root.resolve().as_posix()}".encode()
    return hashlib.sha256(material).hexdigest()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_hub_port(port: int | None) -> int:
    """``port`` when it is free (else :class:`PortInUse`); without one, 8000 or any free port."""
    if port is not None:
        if not port_is_free(HOST, port):
            raise PortInUse(HOST, port)
        return port
    if port_is_free(HOST, DEFAULT_HUB_PORT):
        return DEFAULT_HUB_PORT
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Sandboxes:
    """The SaaS sandboxes' in-process state and where they listen."""

    stripe: StripeSandbox
    shopify: ShopifySandbox
    zendesk: ZendeskSandbox
    wms: WmsSandbox
    urls: dict[str, str] = field(default_factory=dict)


class DemoEnvironment:
    """Start and stop the ERP sandbox, the SaaS sandboxes and (separately) the hub."""

    def __init__(self, root: Path | None = None, *, hub_port: int | None = None) -> None:
        self.root = (root or demo_dir()).resolve()
        self.hub_port = choose_hub_port(hub_port)
        self.erp = ErpSandbox(self.root / "erp")
        self.sandboxes = Sandboxes(
            stripe=StripeSandbox(),
            shopify=ShopifySandbox(),
            zendesk=ZendeskSandbox(email=ZENDESK_EMAIL, api_token=ZENDESK_TOKEN),
            wms=WmsSandbox(api_key=WMS_API_KEY, webhook_secret=WMS_WEBHOOK_SECRET),
        )
        self._servers: list[SandboxServer] = []
        self.template_built = False

    @property
    def hub_url(self) -> str:
        return f"http://{HOST}:{self.hub_port}"

    def webhook_url(self, connector: str) -> str:
        return f"{self.hub_url}/v1/webhooks/{connector}"

    # --- lifecycle -------------------------------------------------------------------------

    def start_systems(self) -> None:
        """Fresh ERP database from the template, trytond up, every SaaS sandbox listening."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.erp.prepare(fresh=True)
        assert self.erp.template is not None
        self.template_built = self.erp.template.built
        self.erp.start()
        boxes = self.sandboxes
        apps: dict[str, Any] = {
            "stripe": create_stripe_sandbox(boxes.stripe),
            "shopify": create_shopify_sandbox(boxes.shopify),
            "zendesk": boxes.zendesk.app,
            "wms": boxes.wms.app,
        }
        for name, app in apps.items():
            server = SandboxServer(app, host=HOST).start()
            self._servers.append(server)
            boxes.urls[name] = server.base_url
        boxes.stripe.webhook_url = self.webhook_url("stripe")
        boxes.shopify.webhook_url = self.webhook_url("shopify")
        boxes.zendesk.webhook = WebhookTarget(
            url=self.webhook_url("zendesk"), secret=ZENDESK_WEBHOOK_SECRET
        )
        boxes.wms.webhook_url = self.webhook_url("wms")

    def stop_systems(self) -> None:
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()
        self.erp.stop()

    def fresh_hub_directory(self) -> Path:
        """The hub's data directory, emptied (each run starts from a clean hub database)."""
        hub_dir = self.root / "hub"
        if hub_dir.exists():
            shutil.rmtree(hub_dir)
        hub_dir.mkdir(parents=True)
        return hub_dir

    # --- the hub's settings ----------------------------------------------------------------

    def settings(self, hub_dir: Path) -> Settings:
        """The hub's settings: embedded SQLite under ``hub_dir``, every connector configured."""
        urls = self.sandboxes.urls
        if not urls or self.erp.port is None:
            raise DemoError("start the demo systems before building the hub's settings")
        connectors = ConnectorsSettings(
            erp=ErpSettings(
                base_url=self.erp.base_url,
                database=self.erp.database,
                login=self.erp.login,
                password=SecretStr(self.erp.password),
                timeout_seconds=20,
                poll_interval_seconds=2,
            ),
            stripe=load_stripe_settings(
                {
                    "api_key": SANDBOX_API_KEY,
                    "webhook_secret": STRIPE_WEBHOOK_SECRET,
                    "base_url": urls["stripe"],
                    "backoff_seconds": 0.05,
                    "timeout_seconds": 10,
                }
            ),
            shopify=ShopifySettings(
                shop_domain=SANDBOX_SHOP_DOMAIN,
                access_token=SecretStr(SANDBOX_ACCESS_TOKEN),
                webhook_secret=SecretStr(SANDBOX_WEBHOOK_SECRET),
                base_url=urls["shopify"],
                backoff_seconds=0.05,
            ),
            zendesk=ZendeskSettings(
                base_url=urls["zendesk"],
                email=ZENDESK_EMAIL,
                api_token=SecretStr(ZENDESK_TOKEN),
                webhook_secret=SecretStr(ZENDESK_WEBHOOK_SECRET),
                order_reference_system="shopify",
                backoff_seconds=0.05,
            ),
            wms=WmsSettings(
                base_url=urls["wms"],
                api_key=SecretStr(WMS_API_KEY),
                webhook_secret=SecretStr(WMS_WEBHOOK_SECRET),
                backoff_seconds=0.05,
            ),
        )
        return Settings(
            environment="demo",
            data_dir=hub_dir,
            database_url="",
            secret_key=SecretStr(derived_secret(self.root, "hub-secret-key")),
            api=ApiSettings(host=HOST, port=self.hub_port),
            log=LogSettings(level="ERROR", json_output=True),
            connectors=connectors,
        )


class HubServer:
    """The hub's ASGI app served by uvicorn on the caller's event loop (DBOS needs that)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            log_config=None,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self, timeout_seconds: float = 120.0) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="demo-hub")
        waited = 0.0
        while not self.server.started:
            if self.task.done():
                error = self.task.exception() if not self.task.cancelled() else None
                raise DemoError(f"the hub did not start: {error or 'it exited during startup'}")
            if waited > timeout_seconds:
                raise DemoError(f"the hub did not start within {timeout_seconds:.0f} s")
            await asyncio.sleep(0.05)
            waited += 0.05

    async def wait(self) -> None:
        """Until the server exits (Ctrl-C, or :meth:`stop`)."""
        if self.task is not None:
            await self.task

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, timeout=30)
