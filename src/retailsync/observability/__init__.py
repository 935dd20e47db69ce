"""Tracing context, structured logging, the trace store, metrics, spans, KPIs and SLA alerts.

``tracecontext`` and ``logging`` are imported by every layer; ``traces`` (the durable trace
store: ``record_hop`` / ``load_trace``), ``metrics`` (Prometheus series and hooks), ``otel``
(spans), ``instrument`` (one-line helpers for the bus, workflows and the outbound guard),
``correlation`` (new work about a known order joins its correlation id), ``kpis`` (pure KPI
functions) with ``kpi_source`` (their SQL loader), ``sla``, ``alerts`` and ``monitor`` build
on them; ``api`` and ``cli`` are the entrypoints.
May import ``retailsync.domain``, ``retailsync.db`` and ``retailsync.config``; it reads the
bus's and reconciliation's tables by name only (never imports those packages), and only
``api`` imports ``retailsync.api`` (auth and problem details).
"""
