"""The JSON-RPC client without a server: wire types, error split, session renewal."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest

from retailsync.connectors.erp.client import (
    TrytonClient,
    TrytonConnection,
    decode_json,
    encode_value,
    error_from_payload,
)
from retailsync.connectors.erp.errors import (
    ErpAuthenticationError,
    ErpBusinessError,
    ErpOperationNotCarriedOut,
    ErpProtocolError,
    ErpTransientError,
)
from retailsync.connectors.erp.poller import event_id

CONNECTION = TrytonConnection("http://erp.test", "db", "admin", "secret")


def test_wire_types_round_trip() -> None:
    value = {
        "price": Decimal("45.10"),
        "when": dt.datetime(2026, 3, 1, 12, 30, 5, 7),
        "day": dt.date(2026, 3, 1),
        "blob": b"\x00\x01",
        "ids": (1, 2),
    }
    assert decode_json(json.dumps(encode_value(value))) == {**value, "ids": [1, 2]}


def test_aware_datetimes_are_sent_in_utc() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    encoded = encode_value(dt.datetime(2026, 3, 1, 13, 0, tzinfo=berlin))
    assert (encoded["hour"], encoded["day"]) == (12, 1)


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        (
            ["UserError", ["Missing account", "Set it on the product", []]],
            ErpBusinessError,
            "Missing account",
        ),
        (["UserWarning", ["w1", "Stock is short", ""]], ErpBusinessError, "Stock is short"),
        (["ConcurrencyException", "Record modified"], ErpTransientError, "concurrent"),
        (["LoginException", ["password", "Password", "password"]], ErpAuthenticationError, "login"),
        (["'res.user'", ""], ErpBusinessError, "'res.user'"),
        ("boom", ErpProtocolError, "unrecognised"),
    ],
)
def test_error_payloads_are_split_by_what_the_caller_should_do(
    payload: object, error: type[Exception], text: str
) -> None:
    exc = error_from_payload(payload, "model.sale.sale.confirm")
    assert type(exc) is error
    assert text.lower() in str(exc).lower()


def test_not_carried_out_names_states_and_reason() -> None:
    exc = ErpOperationNotCarriedOut(
        "Missing revenue account",
        operation="confirm",
        expected_state="processing",
        actual_state="confirmed",
    )
    assert isinstance(exc, ErpBusinessError)
    assert "'confirmed', not 'processing'" in str(exc) and "Missing revenue account" in str(exc)


class FakeTryton:
    """A scripted Tryton: counts logins, expires the first session, can fail with 503."""

    def __init__(self) -> None:
        self.logins = 0
        self.fail_next_with: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method = body["method"]
        if self.fail_next_with:
            status, self.fail_next_with = self.fail_next_with, None
            return httpx.Response(status, text="unavailable")
        if method == "common.db.login":
            self.logins += 1
            return httpx.Response(
                200, json={"id": body["id"], "result": [1, f"token{self.logins}"]}
            )
        auth = request.headers.get("Authorization", "")
        import base64

        token = base64.b64decode(auth.removeprefix("Session ")).decode().rsplit(":", 1)[-1]
        if token != f"token{self.logins}" or self.logins == 1:
            return httpx.Response(401)  # the first session "expired"
        if method == "model.res.user.get_preferences":
            return httpx.Response(200, json={"id": body["id"], "result": {"company": 1}})
        return httpx.Response(200, json={"id": body["id"], "result": body["params"][-1]})


async def test_expired_session_is_renewed_once_and_context_is_appended() -> None:
    fake = FakeTryton()
    async with TrytonClient(CONNECTION, transport=httpx.MockTransport(fake)) as client:
        assert await client.call("model.x.y", [1]) == {"company": 1}
        assert client.logins == 2


async def test_5xx_and_connection_errors_are_transient() -> None:
    fake = FakeTryton()
    fake.fail_next_with = 503
    async with TrytonClient(CONNECTION, transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(ErpTransientError) as caught:
            await client.call("model.x.y", [])
        assert caught.value.status_code == 503

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with TrytonClient(CONNECTION, transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(ErpTransientError, match="could not be reached"):
            await client.call("model.x.y", [])


async def test_rejected_login_is_an_authentication_error() -> None:
    def forbid(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403)

    async with TrytonClient(CONNECTION, transport=httpx.MockTransport(forbid)) as client:
        with pytest.raises(ErpAuthenticationError, match="refused the login"):
            await client.call("model.x.y", [])


def test_event_ids_are_deterministic_per_change() -> None:
    stamp = dt.datetime(2026, 3, 1, 12, 0)
    one = event_id("sale.sale", 1, stamp, "processing", "status")
    assert one == event_id("sale.sale", 1, stamp, "processing", "status")
    assert one != event_id("sale.sale", 1, stamp, "shipped", "status")
    assert one != event_id("sale.sale", 2, stamp, "processing", "status")
