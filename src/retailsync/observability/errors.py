"""Errors of observability; each message says what was wrong and what to do."""

from __future__ import annotations


class ObservabilityError(Exception):
    """Base of the errors raised by ``retailsync.observability``."""


class TraceQueryInvalid(ObservabilityError, ValueError):
    """A trace was asked for without exactly one of order, case or correlation id."""


class KpiQueryInvalid(ObservabilityError, ValueError):
    """A KPI window or grouping that cannot be computed."""


class ExporterUnavailable(ObservabilityError):
    """The configured span exporter's package is not installed."""

    def __init__(self, exporter: str, package: str) -> None:
        super().__init__(
            f"the span exporter {exporter!r} needs the package {package!r}: install it "
            f"(pip install {package}) or set RETAILSYNC_OBSERVABILITY__TRACING__EXPORTER to "
            "'console' or 'none'"
        )
        self.exporter = exporter
        self.package = package


class AlertDeliveryFailed(ObservabilityError):
    """A sink refused or could not take an alert; it stays pending and is sent again."""

    def __init__(self, sink: str, reason: str) -> None:
        super().__init__(
            f"alert sink {sink} failed: {reason}; the alert stays pending and the next "
            "monitor run sends it again"
        )
        self.sink = sink
        self.reason = reason
