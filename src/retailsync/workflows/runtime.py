"""The durable runtime: DBOS configured from the hub's settings, launched once per process.

DBOS keeps one instance per process, so this module owns it: :func:`launch_workflows` builds
the configuration (system database, JSON serializer, explicit application version, executor
id), registers the queues and hands the adapters to the steps; :func:`shutdown_workflows`
destroys it so the next launch (the next test) starts clean. Call both from inside the event
loop that owns the adapters (a FastAPI lifespan, ``asyncio.run(main())``): DBOS then runs
recovered and queued workflows on that loop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer
from sqlalchemy.engine import make_url

from retailsync.config import Settings
from retailsync.domain.policies import (
    DEFAULT_REFUND_POLICY,
    DEFAULT_RETURN_POLICY,
    RefundPolicy,
    ReturnPolicy,
)
from retailsync.workflows.errors import WorkflowsNotLaunched

if TYPE_CHECKING:
    from dbos import Queue

    from retailsync.workflows.steps import WorkflowPorts

APPLICATION_NAME = "retailsync"
APPLICATION_VERSION = "retailsync-workflows-1"
"""The version recorded with every workflow. Bump it only for a change that alters the sequence
of steps of a workflow already in flight (see docs/workflows.md, "Upgrading"); a process
recovers only the pending workflows of its own version."""
JSON_SERIALIZER = DBOSPortableJSONSerializer()
"""Workflow inputs, outputs, step results and messages are stored as plain JSON."""
ERP_QUEUE = "retailsync-erp"
"""ERP-bound steps run as child workflows on this queue when it is enabled (scale-out)."""
PROCESS_QUEUE = "retailsync-process"
"""Workflows started by the process API in scale-out mode, shared by every worker."""
WORKFLOW_MODULES = (
    "retailsync.workflows.refund",
    "retailsync.workflows.returns",
    "retailsync.workflows.replacement",
    "retailsync.workflows.cancellation",
    "retailsync.workflows.fulfillment",
)


@dataclass(frozen=True)
class RetrySchedule:
    """How a step retries a transient failure before it counts as permanent."""

    attempts: int = 5
    first_delay_seconds: float = 0.5
    factor: float = 2.0
    max_delay_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(
            min(self.max_delay_seconds, self.first_delay_seconds * self.factor ** (attempt - 1))
        )


@dataclass(frozen=True)
class WorkflowOptions:
    """Tunables of the runtime; the defaults suit a production hub."""

    application_version: str = APPLICATION_VERSION
    erp_rate_limit: int = 5
    """ERP-bound steps started per ``erp_rate_period_seconds``, across every process."""
    erp_rate_period_seconds: float = 1.0
    erp_worker_concurrency: int | None = 4
    erp_via_queue: bool | None = None
    """Run ERP-bound steps through the rate-limited queue; default: on for PostgreSQL only."""
    process_queue_concurrency: int | None = 20
    """Workflows of the process queue one worker runs at once."""
    queue_polling_interval_seconds: float = 0.2
    retry: RetrySchedule = field(default_factory=RetrySchedule)
    refund_policy: RefundPolicy = DEFAULT_REFUND_POLICY
    return_policy: ReturnPolicy = DEFAULT_RETURN_POLICY
    log_level: str = "WARNING"
    source: str = "/retailsync/workflows"
    """CloudEvents ``source`` of the events the workflows emit."""


@dataclass
class WorkflowRuntime:
    """What the steps read at run time: settings, options, adapters and queues."""

    settings: Settings
    options: WorkflowOptions
    ports: WorkflowPorts
    erp_queue: Queue | None = None
    process_queue: Queue | None = None

    @property
    def erp_via_queue(self) -> bool:
        if self.options.erp_via_queue is not None:
            return self.options.erp_via_queue
        return not self.settings.is_sqlite


_runtime: WorkflowRuntime | None = None


def current_runtime() -> WorkflowRuntime:
    """The launched runtime of this process; :class:`WorkflowsNotLaunched` when there is none."""
    if _runtime is None:
        raise WorkflowsNotLaunched()
    return _runtime


def is_launched() -> bool:
    return _runtime is not None


def system_database_url(settings: Settings) -> str:
    """Where DBOS keeps workflow state.

    PostgreSQL: the hub's own database (DBOS uses its own ``dbos`` schema). SQLite: a sibling
    file next to the hub's (``retailsync.sqlite`` -> ``retailsync.dbos.sqlite``), so the two
    writers never contend for one file lock.
    """
    url = settings.resolved_database_url
    if not settings.is_sqlite:
        return url
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError(
            "workflows need a SQLite file, not an in-memory database: set "
            "RETAILSYNC_DATABASE_URL=sqlite:///path/to/retailsync.sqlite"
        )
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.with_name(path.stem + '.dbos' + path.suffix).as_posix()}"


def dbos_config(settings: Settings, options: WorkflowOptions | None = None) -> DBOSConfig:
    """The DBOS configuration of this hub process."""
    options = options or WorkflowOptions()
    return {
        "name": APPLICATION_NAME,
        "system_database_url": system_database_url(settings),
        "application_version": options.application_version,
        "executor_id": settings.worker_id,
        "serializer": JSON_SERIALIZER,
        "log_level": options.log_level,
    }


def import_workflows() -> None:
    """Import every workflow module so DBOS knows each workflow before it recovers any."""
    for module in WORKFLOW_MODULES:
        importlib.import_module(module)


async def launch_workflows(
    settings: Settings, ports: WorkflowPorts, options: WorkflowOptions | None = None
) -> WorkflowRuntime:
    """Start DBOS in this process (once) and recover this executor's pending workflows."""
    global _runtime
    if _runtime is not None:
        return _runtime
    options = options or WorkflowOptions()
    import_workflows()
    config = dbos_config(settings, options)
    DBOS(config=config)
    runtime = WorkflowRuntime(settings=settings, options=options, ports=ports)
    _runtime = runtime
    try:
        DBOS.launch()
        runtime.process_queue = await DBOS.register_queue_async(
            PROCESS_QUEUE,
            worker_concurrency=options.process_queue_concurrency,
            polling_interval_sec=options.queue_polling_interval_seconds,
            on_conflict="always_update",
        )
        if runtime.erp_via_queue:
            runtime.erp_queue = await DBOS.register_queue_async(
                ERP_QUEUE,
                worker_concurrency=options.erp_worker_concurrency,
                limiter={
                    "limit": options.erp_rate_limit,
                    "period": options.erp_rate_period_seconds,
                },
                polling_interval_sec=options.queue_polling_interval_seconds,
                on_conflict="always_update",
            )
    except BaseException:
        _runtime = None
        DBOS.destroy(destroy_registry=False)
        raise
    return runtime


def shutdown_workflows(*, wait_seconds: int = 0) -> None:
    """Stop DBOS in this process; pending workflows resume at the next launch."""
    global _runtime
    try:
        DBOS.destroy(workflow_completion_timeout_sec=wait_seconds)
    finally:
        _runtime = None
        _restore_default_executor()


def _restore_default_executor() -> None:
    """Give the running loop a working default executor again after DBOS is destroyed.

    DBOS makes its own thread pool the loop's default executor (for ``asyncio.to_thread``)
    and shuts that pool down in ``destroy()``, which would leave every later ``to_thread``
    on this loop failing with "cannot schedule new futures after shutdown".
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))


@asynccontextmanager
async def workflow_lifespan(
    settings: Settings, ports: WorkflowPorts, options: WorkflowOptions | None = None
) -> AsyncIterator[WorkflowRuntime]:
    """``async with workflow_lifespan(...)``: launch on entry, shut down on exit."""
    runtime = await launch_workflows(settings, ports, options)
    try:
        yield runtime
    finally:
        shutdown_workflows()


def describe(runtime: WorkflowRuntime) -> dict[str, Any]:
    """What an operator needs to know about this process's runtime."""
    return {
        "application_version": runtime.options.application_version,
        "executor_id": runtime.settings.worker_id,
        "system_database": system_database_url(runtime.settings).split("@")[-1],
        "erp_via_queue": runtime.erp_via_queue,
        "serializer": JSON_SERIALIZER.name(),
    }
