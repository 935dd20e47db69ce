"""The event bus: durable append, per-key ordered delivery, idempotent consumers, exceptions.

``backend`` holds the backend-neutral interface; ``backends/`` the SQL (SQLite/PostgreSQL) and
NATS JetStream implementations; ``consumer`` the SQL-side inbox, entity versions and exception
queue every backend shares; ``api`` (POST /v1/events) and ``cli`` are the entrypoints.
May import ``retailsync.domain``, ``retailsync.db``, ``retailsync.config`` and
``retailsync.resilience.errors``; never connectors, workflows or the API app.
"""
