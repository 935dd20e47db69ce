"""The local downstream server the resilience tests fail, slow down and recover."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER = Path(__file__).with_name("resilience_downstream_server.py")


class DownstreamServer:
    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/_control", json=settings, timeout=5).raise_for_status()

    def reset(self) -> None:
        self.control(reset=True)

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def downstream_process() -> Iterator[DownstreamServer]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), str(port)])
    server = DownstreamServer(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                server.stats()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test downstream server did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def downstream(downstream_process: DownstreamServer) -> DownstreamServer:
    downstream_process.reset()
    return downstream_process
