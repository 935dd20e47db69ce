"""What the order-trace journey runs on: recorded SaaS sandboxes and a real hub process.

Every sandbox is wrapped so that each API request the hub makes is noted with its
``traceparent`` (:class:`Recording`); their webhooks are aimed at the hub. The hub itself is
``retailsync serve`` in a child process (:class:`HubProcess`), so it can be killed with
SIGKILL and started again on the same database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from retailsync.sandbox.shopify import ShopifySandbox
from retailsync.sandbox.stripe import StripeSandbox
from retailsync.sandbox.wms import WmsSandbox
from retailsync.sandbox.zendesk import WebhookTarget, ZendeskSandbox

RETAILSYNC = Path(sys.executable).with_name("retailsync")
ZENDESK_EMAIL = "agent@trace.invalid"
ZENDESK_TOKEN = "trace-zendesk-token"
ZENDESK_SECRET = "trace-zendesk-webhook-secret"
WMS_KEY = "trace-wms-key"
WMS_SECRET = "trace-wms-webhook-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class VendorCall:
    """One API request a vendor's sandbox got from the hub."""

    vendor: str
    method: str
    path: str
    traceparent: str | None

    @property
    def trace_id(self) -> str | None:
        return self.traceparent.split("-")[1] if self.traceparent else None


class Recording:
    """A sandbox app that notes each API request (its control API under ``/_sandbox`` not)."""

    def __init__(self, app: Any, vendor: str, calls: list[VendorCall]) -> None:
        self.app = app
        self.vendor = vendor
        self.calls = calls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox"):
            header = dict(scope["headers"]).get(b"traceparent")
            self.calls.append(
                VendorCall(
                    self.vendor,
                    scope["method"],
                    scope["path"],
                    header.decode() if header else None,
                )
            )
        await self.app(scope, receive, send)


@dataclass
class Vendors:
    """The SaaS sandboxes' state, where they listen, and every API request they got."""

    shopify: ShopifySandbox
    stripe: StripeSandbox
    zendesk: ZendeskSandbox
    wms: WmsSandbox
    urls: dict[str, str]
    calls: list[VendorCall] = field(default_factory=list)

    def aim_webhooks_at(self, hub_url: str) -> None:
        self.shopify.webhook_url = f"{hub_url}/v1/webhooks/shopify"
        self.stripe.webhook_url = f"{hub_url}/v1/webhooks/stripe"
        self.zendesk.webhook = WebhookTarget(
            url=f"{hub_url}/v1/webhooks/zendesk", secret=ZENDESK_SECRET
        )
        self.wms.webhook_url = f"{hub_url}/v1/webhooks/wms"


class HubProcess:
    """``retailsync serve`` on one port and one SQLite database; killed, started again."""

    def __init__(self, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_file = workdir / "retailsync.toml"
        self.config_file.write_text(config, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.starts += 1
        log = (self.workdir / f"hub-{self.starts}.log").open("wb")
        env = {
            **os.environ,
            "RETAILSYNC_CONFIG_FILE": str(self.config_file),
            "RETAILSYNC_DATA_DIR": str(self.workdir / "var"),
        }
        env.pop("RETAILSYNC_DATABASE_URL", None)
        self.process = subprocess.Popen(
            [str(RETAILSYNC), "serve", "--port", str(self.port)],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the hub exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the hub did not get ready in {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, whatever was in flight is cut off."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, chars: int = 6000) -> str:
        logs = sorted(self.workdir.glob("hub-*.log"))
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs
        )
