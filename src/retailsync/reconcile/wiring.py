"""What reconciliation reads from the wired hub (``hub.adapters``), by name.

``reconcile_sources``: ``job -> {system: sorted pages}`` (built by
:func:`retailsync.reconcile.live_sources.reconcile_sources`); ``event_publisher``: where
corrections go (default: the hub's bus); ``reconcile_tickets``: the exception sink (default:
the ``reconcile_exceptions`` table plus the bus exception queue, system ``reconcile``);
``reconcile_policy``; ``availability_settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retailsync.ports.publisher import EventPublisher
from retailsync.reconcile.availability import AvailabilitySettings
from retailsync.reconcile.engine import TicketSink
from retailsync.reconcile.exceptions import ExceptionQueueTicketSink
from retailsync.reconcile.policy import ReconcilePolicy

__all__ = ["availability_settings", "policy", "publisher", "sources_factory", "tickets", "wired"]


def wired(hub: Any) -> Mapping[str, Any]:
    """The hub's adapters by name (``hub.adapters``)."""
    adapters = getattr(hub, "adapters", None)
    if adapters is None:
        adapters = getattr(hub, "components", {})
    return adapters


def sources_factory(hub: Any) -> Any:
    return wired(hub).get("reconcile_sources")


def publisher(hub: Any) -> EventPublisher | None:
    """Where corrections go: the wired ``event_publisher``, else the hub's bus."""
    found = wired(hub).get("event_publisher")
    if found is None:
        found = getattr(hub, "bus", None)
    return found


def tickets(hub: Any) -> TicketSink:
    found = wired(hub).get("reconcile_tickets")
    return found if found is not None else ExceptionQueueTicketSink(hub.engine)


def policy(hub: Any) -> ReconcilePolicy:
    return wired(hub).get("reconcile_policy") or ReconcilePolicy()


def availability_settings(hub: Any) -> AvailabilitySettings:
    found = wired(hub).get("availability_settings")
    return found or AvailabilitySettings()
