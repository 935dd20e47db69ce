"""The newcomer's demo end to end: every system up, the scenario played and verified.

``run_demo(once=True)`` runs in its own process (it owns DBOS, uvicorn's signal handling and
the trytond subprocess), exactly as ``retailsync demo --once`` does, and must exit 0 only when
every expected outcome was verified in the ERP and the sandboxes themselves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retailsync.demo.environment import DemoEnvironment
from retailsync.demo.seed import demo_api_key

RUN_DEMO = (
    "import sys; from retailsync.demo import run_demo; "
    "sys.exit(run_demo(once=True, port=int(sys.argv[1])))"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo(tmp_path: Path, port: int, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RETAILSYNC_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-c", RUN_DEMO, str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.erp
@pytest.mark.slow
@pytest.mark.timeout(480)
def test_demo_once_verifies_every_outcome_in_every_system(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _demo(tmp_path, _free_port(), timeout=450)
    output = result.stdout + result.stderr
    print(output)  # the scenario table is the best failure message
    assert result.returncode == 0, output[-6000:]
    assert "Demo verified" in output
    assert "What each system shows" in output
    print(f"demo --once took {time.monotonic() - started:.0f} s")


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _demo(tmp_path, port, timeout=60)
    assert result.returncode == 2
    output = " ".join((result.stdout + result.stderr).split())
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert "--port" in output
    assert not (tmp_path / "demo" / "erp").exists()  # nothing was started


def test_the_demo_key_is_the_same_for_the_same_directory(tmp_path: Path) -> None:
    first = demo_api_key(tmp_path / "a")
    assert demo_api_key(tmp_path / "a") == first
    assert demo_api_key(tmp_path / "b") != first
    assert first[1].startswith(f"rsk_{first[0]}_")


def test_without_a_port_the_demo_falls_back_to_a_free_one(tmp_path: Path) -> None:
    environment = DemoEnvironment(tmp_path, hub_port=None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", environment.hub_port))  # free right now
