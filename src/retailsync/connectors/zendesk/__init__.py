"""Zendesk Support: tickets as service cases, signed webhooks in, notes and status out.

``config`` (settings), ``client`` (HTTP, auth, cursor pagination, 429 back-off), ``mapping``
(ticket <-> case, pure), ``inbound`` (the webhook receiver), ``outbound`` (the
``ServiceDeskPort`` implementation), ``signing`` (the webhook signature scheme). May import
``retailsync.domain``, ``retailsync.ports``, ``retailsync.resilience`` and ``retailsync.xref``.
"""

from __future__ import annotations

from retailsync.connectors.zendesk.client import ZendeskClient
from retailsync.connectors.zendesk.config import ZendeskSettings
from retailsync.connectors.zendesk.inbound import ZendeskWebhookReceiver
from retailsync.connectors.zendesk.outbound import ZendeskServiceDesk

__all__ = ["ZendeskClient", "ZendeskServiceDesk", "ZendeskSettings", "ZendeskWebhookReceiver"]
