"""``retailsync sandbox erp ...``: build the template, run a local Tryton, show seed ids."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer

from retailsync.sandbox.erp import ErpSandbox, ensure_template
from retailsync.sandbox.erp.seed import ADMIN_LOGIN, ADMIN_PASSWORD

app = typer.Typer(help="A local Tryton ERP for the demo and the tests.", no_args_is_help=True)

CACHE_OPTION = typer.Option(None, help="template cache (default ./var/erp-sandbox)")


@app.command("init")
def init(
    cache_dir: Path | None = CACHE_OPTION,
    rebuild: bool = typer.Option(False, help="build the template again even if cached"),
) -> None:
    """Build (or find) the cached template database and print how long it took."""
    template = ensure_template(cache_dir, rebuild=rebuild)
    how = "built" if template.built else "found in cache"
    typer.echo(f"template {how} in {template.seconds:.1f} s: {template.database_file}")


@app.command("start")
def start(
    workdir: Path = typer.Option(Path("var/erp-sandbox/run"), help="where the database lives"),
    port: int = typer.Option(8000, help="loopback port for trytond"),
    database: str = typer.Option("retailsync", help="Tryton database name"),
    cache_dir: Path | None = CACHE_OPTION,
    keep: bool = typer.Option(False, help="keep the existing database instead of a fresh copy"),
) -> None:
    """Run trytond on a copy of the template until Ctrl-C."""
    sandbox = ErpSandbox(workdir, database=database, cache_dir=cache_dir, port=port)
    sandbox.prepare(fresh=not keep)
    sandbox.start()
    typer.echo(
        f"Tryton ERP sandbox at {sandbox.base_url}/{database}/rpc/ "
        f"(login {ADMIN_LOGIN} / {ADMIN_PASSWORD}); log: {sandbox.log_file}. Ctrl-C stops it."
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and sandbox.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        typer.echo("Tryton ERP sandbox stopped")


@app.command("seed")
def seed(cache_dir: Path | None = CACHE_OPTION) -> None:
    """Print the seeded ids (products by SKU, customers by e-mail, locations by code) as JSON."""
    typer.echo(ensure_template(cache_dir).seed.to_json())
