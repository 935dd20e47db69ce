"""HTTP entry points: FastAPI routers per layer (system, process, experience, admin),
problem+json errors, trace context, and (as they land) auth, idempotency and rate limits.

Thin: parse, call the bus / workflows / views, answer. May import every other package except
``console`` and ``cli``.
"""
