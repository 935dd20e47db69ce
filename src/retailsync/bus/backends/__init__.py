"""Bus backends: ``sql`` (SQLite / PostgreSQL outbox-inbox) and ``nats`` (JetStream).

Each module exposes ``create_backend(config: BackendConfig) -> EventBusBackend``.
"""
