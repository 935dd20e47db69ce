"""HTTP entry points: FastAPI routers per layer (system, process, experience, admin) and the
governance that wraps them all — authentication (API keys, client-credentials JWTs) and
scopes (``auth``), rate limits (``ratelimit``), ``Idempotency-Key`` (``idempotency``),
deprecation headers (``versioning``), problem+json errors (``problems``), trace context.

Thin: parse, call the bus / workflows / views, answer. May import every other package except
``console`` and ``cli``.
"""
