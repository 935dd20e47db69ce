"""The ``retailsync`` command line: serve, demo, database, schemas and operations."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.console import Console

from retailsync import __version__
from retailsync.api.clients_cli import app as clients_app
from retailsync.bus import cli as bus_cli
from retailsync.config import Settings
from retailsync.connectors.erp import cli as erp_cli
from retailsync.observability import cli as observability_cli
from retailsync.reconcile.cli import app as reconcile_app
from retailsync.schemas.cli import app as schemas_app
from retailsync.workflows.cli import app as workflows_app

app = typer.Typer(
    name="retailsync",
    help="Retail Sync Hub: keeps ERP, service desk, storefronts, warehouse and payments in step.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(schemas_app, name="schemas", help="Event JSON Schemas and the AsyncAPI document.")
sandbox_app = typer.Typer(
    help="Local stand-ins for the systems the hub talks to.", no_args_is_help=True
)
sandbox_app.add_typer(erp_cli.app, name="erp", help="A live Tryton ERP on SQLite.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(clients_app, name="clients", help="API clients: keys, scopes, revocation.")
app.command("replay")(bus_cli.replay)
app.command("trace")(observability_cli.trace)
app.add_typer(observability_cli.app, name="observability", help="Business KPIs and SLA checks.")
app.add_typer(reconcile_app, name="reconcile", help="Compare systems, report and correct drift.")
app.add_typer(workflows_app, name="workflows", help="Durable workflows: list, show, approve.")
app.add_typer(bus_cli.exceptions_app, name="exceptions", help="Work the exception queue.")
console = Console(stderr=True)


def _load_settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[red]Invalid configuration:[/red]\n{exc}")
        raise typer.Exit(2) from exc


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from retailsync.api.app import create_app
    from retailsync.bootstrap import ConfigurationError, bootstrap

    host = host or settings.api.host
    port = port or settings.api.port
    if not _port_is_free(host, port):
        console.print(
            f"[red]Port {port} on {host} is already in use.[/red] Stop the other process or "
            f"choose another port with --port or RETAILSYNC_API__PORT."
        )
        raise typer.Exit(2)
    try:
        hub = bootstrap(settings)
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"Retail Sync Hub {__version__} on http://{host}:{port}/v1 "
        f"(database: {settings.resolved_database_url.split('@')[-1]}, mode: {settings.mode})"
    )
    try:
        uvicorn.run(
            create_app(hub, run_background=True),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
    finally:
        hub.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the hub: API, event delivery and workflows in one process (embedded mode)."""
    _serve(_load_settings(), host, port)


@app.command()
def demo(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Play the scenario, verify, print the summary and exit "
            "(0 only if every outcome was verified).",
        ),
    ] = False,
    port: Annotated[
        int | None, typer.Option(help="The hub's port (default 8000, or any free port).")
    ] = None,
) -> None:
    """Start every system locally, seed a small store and play the retail scenario."""
    from retailsync.demo import run_demo

    raise typer.Exit(run_demo(once=once, port=port))


@app.command()
def worker() -> None:
    """Deliver events and run background work without the API (scale-out; needs PostgreSQL).

    Give each worker a stable identity with RETAILSYNC_WORKER_ID and restart it under the same
    identity when it stops.
    """
    import asyncio
    import signal

    from retailsync.bootstrap import ConfigurationError, bootstrap, check_worker, run_hub
    from retailsync.runtime import settle_heap

    settings = _load_settings()
    try:
        check_worker(settings)
        hub = bootstrap(settings)
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    async def run() -> None:
        async with run_hub(hub, deliver_events=True) as stop:
            settle_heap()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            console.print(f"worker {settings.worker_id} running; Ctrl-C to stop")
            await stop.wait()

    asyncio.run(run())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    from retailsync.db import current_revisions, upgrade_database

    settings = _load_settings()
    url = settings.resolved_database_url
    upgrade_database(url)
    revisions = ", ".join(sorted(current_revisions(url)))
    console.print(f"Database at {url.split('@')[-1]} is at revision(s): {revisions}")


@app.command()
def version() -> None:
    """Print the hub's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
