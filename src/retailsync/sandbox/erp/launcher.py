"""Start a throwaway Tryton ERP on a loopback port, from a cached template database.

Initialising a Tryton database takes ~30 s, so the first run builds a *template* (modules
activated, company, chart of accounts, fiscal years, catalogue, stock, customers) and keeps it
under the cache directory, keyed by a hash of the recipe and the installed Tryton version.
Every sandbox then starts from a 5 ms copy of that file. Nothing is installed at run time: the
``trytond`` executables must already be in the same environment as this Python.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from retailsync.sandbox.erp import recipe
from retailsync.sandbox.erp import seed as seed_data
from retailsync.sandbox.erp.errors import ErpSandboxError
from retailsync.sandbox.erp.seed import SandboxSeed

DEFAULT_CACHE_DIR = Path("var") / "erp-sandbox"
CACHE_DIR_ENV = "RETAILSYNC_ERP_SANDBOX_CACHE"
TEMPLATE_DATABASE = "template"
TRYTON_DISTRIBUTIONS = (
    "trytond",
    "trytond-sale",
    "trytond-stock",
    "trytond-account-invoice",
    "trytond-account-invoice-stock",
    "trytond-sale-complaint",
)


def default_cache_dir() -> Path:
    """``$RETAILSYNC_ERP_SANDBOX_CACHE`` or ``./var/erp-sandbox``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def tryton_executable(name: str) -> Path:
    """A Tryton command installed next to the running Python (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ErpSandboxError(
        f"{name} is not installed in this environment ({sys.executable}); "
        "install the ERP extra: pip install 'retailsync[erp]'"
    )


def template_key(today: date | None = None) -> str:
    """Hash of everything that shapes the template: recipe, seed data, Tryton versions, year."""
    today = today or date.today()
    versions = {}
    for dist in TRYTON_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "missing"
    material = {
        "fingerprint": seed_data.recipe_fingerprint(),
        "recipe": inspect.getsource(recipe),
        "versions": versions,
        "fiscal_years": recipe.fiscal_year_span(today),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _tryton_env(directory: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRYTOND_", "TRYTON"))}
    env.update(
        TRYTOND_DATABASE__URI="sqlite://",
        TRYTOND_DATABASE__PATH=str(directory),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database file nobody is writing to, without stale WAL/SHM side files."""
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class Template:
    """A ready, initialised Tryton database file and the ids of its seeded records."""

    database_file: Path
    seed: SandboxSeed
    built: bool  # True when this call built it, False when it came from the cache
    seconds: float


def ensure_template(cache_dir: Path | None = None, *, rebuild: bool = False) -> Template:
    """The cached template database, built first if missing (safe across processes)."""
    cache_dir = (cache_dir or default_cache_dir()).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = template_key()
    final_dir = cache_dir / key
    started = time.perf_counter()
    with _exclusive(cache_dir / ".lock"):
        if rebuild and final_dir.exists():
            shutil.rmtree(final_dir)
        built = False
        if not (final_dir / "seed.json").exists():
            _build_template(cache_dir, final_dir)
            built = True
    return Template(
        database_file=final_dir / f"{TEMPLATE_DATABASE}.sqlite",
        seed=SandboxSeed.load(final_dir / "seed.json"),
        built=built,
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_template(cache_dir: Path, final_dir: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="building-", dir=cache_dir))
    try:
        (work / f"{TEMPLATE_DATABASE}.sqlite").touch()
        password_file = work / "admin-password"
        password_file.write_text(seed_data.ADMIN_PASSWORD + "\n", encoding="utf-8")
        env = _tryton_env(work, TRYTONPASSFILE=str(password_file))
        _run(
            [
                str(tryton_executable("trytond-admin")),
                "-d",
                TEMPLATE_DATABASE,
                "-u",
                *seed_data.MODULES,
                "--activate-dependencies",
                "--email",
                seed_data.ADMIN_EMAIL,
            ],
            env,
            work / "trytond-admin.log",
            "activating the Tryton modules",
        )
        _run(
            [
                sys.executable,
                "-m",
                "retailsync.sandbox.erp.recipe",
                "--name",
                TEMPLATE_DATABASE,
                "--output",
                str(work / "seed.json"),
            ],
            env,
            work / "recipe.log",
            "loading the sandbox master data",
        )
        password_file.unlink()
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{work / TEMPLATE_DATABASE}.sqlite{suffix}").unlink(missing_ok=True)
        work.rename(final_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _run(command: list[str], env: dict[str, str], log: Path, what: str) -> None:
    with log.open("wb") as output:
        result = subprocess.run(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise ErpSandboxError(f"{what} failed (exit {result.returncode}):\n{tail}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ErpSandbox:
    """One Tryton server on a private copy of the template database.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        database: str = "retailsync",
        cache_dir: Path | None = None,
        port: int | None = None,
        processes: int = 1,
        session_timeout_seconds: int | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.database = database
        self.cache_dir = cache_dir
        self.port = port
        self.processes = processes
        self.session_timeout_seconds = session_timeout_seconds
        self.template: Template | None = None
        self.copy_seconds = 0.0
        self.start_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    # --- what clients need -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise ErpSandboxError("the ERP sandbox has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def seed(self) -> SandboxSeed:
        if self.template is None:
            raise ErpSandboxError("the ERP sandbox has not been prepared")
        return self.template.seed

    @property
    def login(self) -> str:
        return seed_data.ADMIN_LOGIN

    @property
    def password(self) -> str:
        return seed_data.ADMIN_PASSWORD

    @property
    def database_file(self) -> Path:
        return self.workdir / f"{self.database}.sqlite"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"trytond-{self.database}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- lifecycle -------------------------------------------------------------------------

    def prepare(self, *, fresh: bool = True) -> None:
        """Make sure the template exists and copy it to this sandbox's database file."""
        self.template = ensure_template(self.cache_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if fresh or not self.database_file.exists():
            started = time.perf_counter()
            copy_database(self.template.database_file, self.database_file)
            self.copy_seconds = time.perf_counter() - started

    def start(self, *, ready_timeout_seconds: float = 60.0) -> None:
        """Start ``trytond`` (preparing the database first if needed) and wait until it answers."""
        if self.running:
            return
        if self.template is None or not self.database_file.exists():
            self.prepare()
        started = time.perf_counter()
        for _attempt in range(3):
            port = self.port or free_port()
            if self._spawn(port, ready_timeout_seconds):
                self.port = port
                self.start_seconds = time.perf_counter() - started
                return
            if self.port is not None:
                break  # an explicit port that did not work: do not guess another
        log = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise ErpSandboxError(f"trytond did not start; its log ends with:\n{log}")

    def _spawn(self, port: int, ready_timeout_seconds: float) -> bool:
        extra = {
            "TRYTOND_WEB__LISTEN": f"127.0.0.1:{port}",
            "TRYTOND_DATABASE_NAMES": self.database,
        }
        if self.session_timeout_seconds is not None:
            extra["TRYTOND_SESSION__TIMEOUT"] = str(self.session_timeout_seconds)
        command = [str(tryton_executable("trytond")), "-d", self.database]
        if self.processes > 1:
            command += ["-n", str(self.processes)]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                env=_tryton_env(self.workdir, **extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout_seconds
        url = f"http://127.0.0.1:{port}/"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                # trytond loads the database before it listens: any HTTP answer means ready.
                answer = httpx.get(url, timeout=2.0)
                if answer.status_code < 500:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        return False

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout_seconds)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def __enter__(self) -> ErpSandbox:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
