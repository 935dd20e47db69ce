"""Fixtures for the console's end-to-end tests: the hub served by uvicorn on a free port and a
headless Debian Chromium driven by Playwright (never a downloaded browser).

Screenshots go to ``test-artifacts/console/`` (gitignored). When Chromium is missing the
browser tests fail with the command that installs it (``scripts/ensure-chromium.sh``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from console_hub import ConsoleHub, build_console_hub  # noqa: E402

from retailsync.sandbox.server import SandboxServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
ALL_SCOPES = ["admin", "experience:read", "process:write", "process:approve", "system:read"]


@pytest.fixture
def console_hub(tmp_path: Path) -> Iterator[ConsoleHub]:
    hub = build_console_hub(tmp_path)
    yield hub
    hub.hub.close()


@pytest.fixture
def served(console_hub: ConsoleHub) -> Iterator[str]:
    """The base URL of the hub, served by uvicorn in a background thread."""
    server = SandboxServer(console_hub.app, startup_timeout=60.0).start()
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests drive Debian's Chromium. "
            "Run scripts/ensure-chromium.sh (as root it installs it with apt-get)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """``new_page()`` -> a page in a fresh browser context (its own cookies)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``shot(page, "exceptions")`` saves a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)

    def take(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{test}--{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
