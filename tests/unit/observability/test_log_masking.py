from __future__ import annotations

import json

import pytest

from retailsync.observability.logging import configure_logging, get_logger, mask_text, mask_value
from retailsync.observability.tracecontext import TraceParent, current_trace


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("customer jane.doe@example.com asked", "jane.doe@example.com"),
        ("call +44 20 7946 0958 now", "7946 0958"),
        ("phone: (555) 123-4567", "123-4567"),
    ],
)
def test_free_text_pii_is_masked(text: str, leaked: str) -> None:
    assert leaked not in mask_text(text)


def test_order_numbers_and_amounts_are_kept() -> None:
    assert mask_text("order ord_123 refund 45.00 EUR") == "order ord_123 refund 45.00 EUR"


def test_secret_and_pii_keys() -> None:
    assert mask_value("api_key", "rk_live_abc") == "[REDACTED]"
    assert mask_value("Authorization", "Bearer x") == "[REDACTED]"
    assert mask_value("street", "1 High Street") == "[MASKED]"
    nested = mask_value("customer", {"email": "a@b.io", "address": {"line1": "1 High St"}})
    assert nested == {"email": "[MASKED]", "address": "[MASKED]"}
    assert mask_value("shipping", {"line1": "1 High St", "city": "Leeds"})["line1"] == "[MASKED]"


def test_log_line_is_json_with_correlation_id_and_no_pii(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    trace = TraceParent.generate()
    token = current_trace.set(trace)
    try:
        get_logger("test").info("refund requested", note="email jane@shop.example", token="t0k")
    finally:
        current_trace.reset(token)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["correlation_id"] == trace.trace_id
    assert "jane@shop.example" not in json.dumps(line)
    assert line["token"] == "[REDACTED]"
    assert line["level"] == "info"


def test_identifiers_are_not_taken_for_phone_numbers() -> None:
    from retailsync.observability.logging import mask_value

    event = "2c668d70-e853-4204-9225-bc24cad189dd"
    assert mask_value(
        "detail", {"event_id": event, "id": event, "note": "call +44 20 7946 0958"}
    ) == {
        "event_id": event,
        "id": event,
        "note": "call ***58",
    }
