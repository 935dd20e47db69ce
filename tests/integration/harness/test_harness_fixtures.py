"""The plain fixtures, and what a run reports when a server cannot be had."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from retailsync.db import create_engine_for

TESTS_DIR = Path(__file__).resolve().parents[2]


def test_sqlite_url_is_a_fresh_file_in_the_test_folder(sqlite_url: str, tmp_path: Path) -> None:
    engine = create_engine_for(sqlite_url)
    try:
        with engine.begin() as connection:
            existing = connection.execute(sa.text("SELECT count(*) FROM sqlite_master")).scalar()
            connection.execute(sa.text("CREATE TABLE return_authorization (id integer)"))
    finally:
        engine.dispose()
    assert existing == 0
    assert (tmp_path / "test.sqlite").is_file()


def test_a_server_that_cannot_be_had_fails_the_test_and_is_reported(tmp_path: Path) -> None:
    shutil.copy(TESTS_DIR / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_needs_nats.py").write_text(
        "def test_needs_nats(nats_url):\n    assert nats_url\n\n\n"
        "def test_needs_sqlite(sqlite_url):\n    assert sqlite_url\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        silent_port = sock.getsockname()[1]
    env = {
        **os.environ,
        "CI": "true",
        "RETAILSYNC_TEST_NATS_URL": f"nats://127.0.0.1:{silent_port}",
        "RETAILSYNC_TEST_NATS_SERVER_BIN": str(tmp_path / "no-such-nats-server"),
    }

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 passed, 1 error" in output, output
    assert "skipped" not in output
    assert "NatsUnavailable" in output
    assert "NATS: UNAVAILABLE: No NATS JetStream server answered" in output
    assert "PostgreSQL:" not in output
