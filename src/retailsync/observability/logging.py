"""Structured JSON logs that carry the correlation id and never show secrets or PII.

PII (e-mail addresses, phone numbers, postal addresses) is masked in every log value;
keys that name secrets (password, token, api_key, secret, authorization …) are redacted
whole.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from retailsync.observability.tracecontext import current_trace

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+\.)+[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d ().-]{6,}\d(?![\w])")
_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|cookie|signature|credential",
    re.IGNORECASE,
)
_ADDRESS_KEYS = re.compile(
    r"^(address|address_line\d?|line[12]|street|street_address|postal_code|zip|postcode)$",
    re.IGNORECASE,
)
_PII_KEYS = re.compile(r"^(email|phone|name|first_name|last_name|full_name)$", re.IGNORECASE)
_ID_KEYS = re.compile(r"(^|_)id$", re.IGNORECASE)
REDACTED = "[REDACTED]"
MASKED = "[MASKED]"


def mask_text(text: str) -> str:
    """Mask e-mail addresses and phone numbers inside free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@***", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group(0))[-2:], text)


def mask_value(key: str, value: Any) -> Any:
    """Mask one log value according to its key and content.

    An identifier (``id``, ``*_id``) is kept as it is: a UUID such as ``…-4204-9225-…``
    would otherwise look like a phone number and be mangled.
    """
    if _SECRET_KEYS.search(key):
        return REDACTED
    if _ADDRESS_KEYS.match(key) or _PII_KEYS.match(key):
        return MASKED if value not in (None, "") else value
    if isinstance(value, str):
        return value if _ID_KEYS.search(key) else mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, item) for item in value]
    return value


def _mask_pii(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        if key in {"timestamp", "level", "logger_name", "correlation_id", "trace_id", "span_id"}:
            continue
        event_dict[key] = mask_value(key, event_dict[key])
    return event_dict


def _add_trace(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    trace = current_trace.get()
    if trace is not None:
        event_dict.setdefault("correlation_id", trace.trace_id)
        event_dict.setdefault("span_id", trace.span_id)
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (it may be replaced after
    logging was configured, e.g. by a test runner capturing output)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    level: str = "INFO", *, json_output: bool = True, mask_pii: bool = True
) -> None:
    """Route structlog and the standard library through one JSON renderer on stderr."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
    ]
    if mask_pii:
        processors.append(_mask_pii)
    processors.append(structlog.processors.format_exc_info)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger named ``name``; resolved lazily, so it follows later configuration."""
    return structlog.get_logger(logger_name=name)
