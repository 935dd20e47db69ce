"""Adapters to outside systems, one package per system.

Each package keeps four things apart: ``client`` (HTTP, auth, pagination, rate-limit headers),
``mapping`` (vendor payload <-> canonical, pure functions), ``inbound`` (webhooks / polling
turned into canonical events) and ``outbound`` (the port implementation). Connectors never call
each other; they may import ``domain``, ``ports``, ``resilience`` and ``xref``.
"""
