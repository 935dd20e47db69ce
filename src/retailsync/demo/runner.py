"""``run_demo``: start everything, seed, play the scenario, verify, summarise, serve or exit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from rich.console import Console

from retailsync.api.app import create_app
from retailsync.bootstrap import ConfigurationError, bootstrap
from retailsync.demo.environment import (
    HOST,
    ZENDESK_EMAIL,
    ZENDESK_TOKEN,
    DemoEnvironment,
    HubServer,
)
from retailsync.demo.errors import DemoError
from retailsync.demo.scenario import STEPS, DemoRun, StepResult, StepStatus, run_step
from retailsync.demo.seed import seed_store
from retailsync.demo.summary import print_summary, where_next
from retailsync.demo.verify import ErpProbe, SandboxProbe

ICONS = {
    StepStatus.VERIFIED: "[green]✔[/green]",
    StepStatus.FAILED: "[red]✘[/red]",
    StepStatus.NOT_AVAILABLE: "[yellow]-[/yellow]",
}


def run_demo(
    once: bool = False,
    port: int | None = None,
    *,
    root: Path | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo; the process exit code.

    ``once``: play the scenario, print the summary and return 0 only when every expected
    outcome was verified in the systems themselves (1 otherwise). Without it, keep serving
    until Ctrl-C (then 0). ``port``: the hub's port (default 8000, or any free port when 8000
    is taken); 2 when the port asked for is in use. ``root``: the demo directory (default
    ``$RETAILSYNC_DEMO_DIR`` or ``./var/demo``).
    """
    console = console or Console()
    try:
        env = DemoEnvironment(root, hub_port=port)
    except DemoError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    try:
        return asyncio.run(_run(env, once=once, console=console))
    except KeyboardInterrupt:
        console.print("stopped")
        return 0 if not once else 130
    except (DemoError, ConfigurationError) as exc:
        console.print(f"[red]The demo could not run: {exc}[/red]")
        return 1
    finally:
        env.stop_systems()


async def _run(env: DemoEnvironment, *, once: bool, console: Console) -> int:
    started = time.monotonic()
    console.rule("[bold]Retail Sync Hub demo")
    with console.status(
        "Starting the Tryton ERP sandbox (the first run builds its template: 1-2 minutes) "
        "and the Stripe, Shopify, Zendesk and WMS sandboxes…"
    ):
        await asyncio.to_thread(env.start_systems)
    template = "built" if env.template_built else "reused from the cache"
    console.print(
        f"{ICONS[StepStatus.VERIFIED]} ERP sandbox on {env.erp.base_url} (template {template}); "
        f"sandboxes: {', '.join(f'{k} {v}' for k, v in env.sandboxes.urls.items())}"
    )
    settings = env.settings(env.fresh_hub_directory())
    hub = await asyncio.to_thread(bootstrap, settings)
    server = HubServer(create_app(hub, run_background=True), HOST, env.hub_port)
    with console.status("Starting the hub (embedded SQLite, durable workflows)…"):
        await server.start()
    console.print(f"{ICONS[StepStatus.VERIFIED]} Hub on {env.hub_url} (data in {env.root})")
    erp = ErpProbe(env.erp.base_url, env.erp.database, env.erp.login, env.erp.password)
    boxes = SandboxProbe(
        env.sandboxes.urls, zendesk_email=ZENDESK_EMAIL, zendesk_token=ZENDESK_TOKEN
    )
    results: list[StepResult] = []
    try:
        async with httpx.AsyncClient(base_url=env.hub_url, timeout=60) as plain:
            with console.status(
                "Seeding the store (stock in two warehouses, a few days of orders)…"
            ):
                erp_adapter = hub.adapters["erp"]
                assert settings.connectors.shopify is not None
                store = await seed_store(
                    env,
                    plain,
                    erp_adapter,
                    settings.connectors.shopify,
                    engine=hub.engine,
                    secret_key=settings.secret_key,
                )
            console.print(
                f"{ICONS[StepStatus.VERIFIED]} Store seeded: {len(store.orders)} orders of the "
                "last days, stock in WH1 and WH2, demo API client"
            )
            async with httpx.AsyncClient(
                base_url=env.hub_url, timeout=60, headers={"X-API-Key": store.api_key}
            ) as api:
                run = DemoRun(
                    env=env,
                    hub=hub,
                    store=store,
                    api=api,
                    erp=erp,
                    boxes=boxes,
                    run_id=time.strftime("%H%M%S"),
                )
                for name, title, step in STEPS:
                    with console.status(f"{title}…"):
                        result = await run_step(run, name, title, step)
                    results.append(result)
                    extra = "" if result.status is StepStatus.VERIFIED else f" — {result.note}"
                    console.print(f"{ICONS[result.status]} {title} ({result.seconds:.1f} s){extra}")
                counts = await collect_counts(run)
        print_summary(console, results, counts)
        first_order = run.new_orders[0]["id"] if run.new_orders else None
        from retailsync.connectors.shopify.mapping import canonical_order_id

        where_next(
            console,
            env.hub_url,
            store.api_key,
            canonical_order_id(first_order) if first_order is not None else None,
        )
        verified = all(r.status is StepStatus.VERIFIED for r in results)
        console.print(
            f"\nDemo {'verified' if verified else 'NOT fully verified'}: "
            f"{sum(r.status is StepStatus.VERIFIED for r in results)}/{len(results)} steps, "
            f"{time.monotonic() - started:.0f} s."
        )
        if once:
            return 0 if verified else 1
        console.print(f"Serving on {env.hub_url} until Ctrl-C.")
        await server.wait()
        return 0
    finally:
        await server.stop()
        await erp.aclose()
        await boxes.aclose()


async def collect_counts(run: DemoRun) -> dict[str, dict[str, int | str]]:
    """Each system's own count of what it holds (errors shown, never hidden)."""
    counts: dict[str, dict[str, int | str]] = {}

    async def guarded(system: str, collect: object) -> None:
        try:
            counts[system] = await collect  # type: ignore[misc]
        except Exception as exc:
            counts[system] = {"could not ask": f"{type(exc).__name__}: {exc}"}

    async def shopify() -> dict[str, int | str]:
        state = await run.boxes.shopify_state()
        hooks = await run.boxes.shopify_webhooks()
        answered = sum(1 for h in hooks for a in h["attempts"] if a and 200 <= a < 300)
        attempts = sum(len(h["attempts"]) for h in hooks)
        return {
            "orders": int(state["orders"]),
            "webhook deliveries answered 2xx": f"{answered}/{attempts}",
        }

    async def stripe() -> dict[str, int | str]:
        state = await run.boxes.stripe_state()
        return {"payments": int(state["payment_intents"]), "refunds": int(state["refunds"])}

    async def zendesk() -> dict[str, int | str]:
        tickets = await run.boxes.zendesk_tickets()
        return {
            "tickets": len(tickets),
            "solved": sum(1 for t in tickets if t["status"] == "solved"),
        }

    async def wms() -> dict[str, int | str]:
        requests = await run.boxes.wms_requests()
        return {
            "return expectations received": sum(
                1 for m, p, s in requests if p == "/v1/return-expectations" and s == 201
            ),
            "signed webhooks sent": len(run.env.sandboxes.wms.deliveries),
        }

    async def erp() -> dict[str, int | str]:
        return dict(await run.erp.counts())

    await guarded("ERP (Tryton)", erp())
    await guarded("Shopify", shopify())
    await guarded("Stripe", stripe())
    await guarded("Zendesk", zendesk())
    await guarded("WMS", wms())
    return counts
