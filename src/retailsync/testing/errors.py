"""Errors raised when a server for tests or benchmarks can be neither found nor started."""

from __future__ import annotations


class ServerUnavailable(RuntimeError):
    """No usable server: none answered at the configured URL and a private one did not start."""


class PostgresUnavailable(ServerUnavailable):
    """No PostgreSQL server could be reached or started."""


class NatsUnavailable(ServerUnavailable):
    """No NATS server with JetStream could be reached or started."""
