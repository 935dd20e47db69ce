"""`retailsync demo` / `serve` start the API on SQLite with migrations applied."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from retailsync.migrations_check import head_revisions

RETAILSYNC = Path(sys.executable).with_name("retailsync")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with code {process.returncode}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_serve_applies_migrations_and_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "RETAILSYNC_DATA_DIR": str(tmp_path / "var")}
    env.pop("RETAILSYNC_DATABASE_URL", None)
    process = subprocess.Popen(
        [str(RETAILSYNC), "serve", "--port", str(port)], env=env, cwd=tmp_path
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/v1/health", process)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/ready").json()["status"] == "ok"
        database = tmp_path / "var" / "retailsync.sqlite"
        engine = sa.create_engine(f"sqlite:///{database}")
        with engine.connect() as conn:
            stamped = {
                row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            }
        engine.dispose()
        assert stamped == head_revisions()
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_taken_port_gets_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [str(RETAILSYNC), "serve", "--port", str(port)],
            env={**os.environ, "RETAILSYNC_DATA_DIR": str(tmp_path / "var")},
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr.decode()
    assert "already in use" in result.stderr.decode()
