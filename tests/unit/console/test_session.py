"""The console's signed session cookie and CSRF tokens."""

from __future__ import annotations

import pytest

from retailsync.console.errors import CsrfRejected, InvalidSession
from retailsync.console.session import (
    ConsoleSession,
    Signer,
    check_csrf,
    check_login_token,
    new_login_token,
)


def test_a_session_round_trips_through_its_signed_cookie() -> None:
    signer = Signer("s3cret")
    session = ConsoleSession.new("c0ffee", clock=lambda: 1000.0, lifetime=60)
    decoded = ConsoleSession.decode(signer, session.encode(signer), clock=lambda: 1059.0)
    assert decoded == session


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        lambda token: "e30" + token[3:],
        lambda token: token.split(".")[0],
        lambda token: "",
    ],
)
def test_a_tampered_cookie_is_refused(tamper) -> None:
    signer = Signer("s3cret")
    token = ConsoleSession.new("c0ffee").encode(signer)
    with pytest.raises(InvalidSession):
        ConsoleSession.decode(signer, tamper(token))


def test_another_secret_key_or_purpose_does_not_verify() -> None:
    token = ConsoleSession.new("c0ffee").encode(Signer("s3cret"))
    with pytest.raises(InvalidSession, match="bad signature"):
        ConsoleSession.decode(Signer("other"), token)
    with pytest.raises(InvalidSession, match="bad signature"):
        Signer("s3cret").unsign("flash", token)


def test_an_expired_session_is_refused() -> None:
    signer = Signer("s3cret")
    token = ConsoleSession.new("c0ffee", clock=lambda: 1000.0, lifetime=60).encode(signer)
    with pytest.raises(InvalidSession, match="expired"):
        ConsoleSession.decode(signer, token, clock=lambda: 1060.0)


def test_csrf_token_must_match_exactly() -> None:
    session = ConsoleSession.new("c0ffee")
    check_csrf(session.csrf_token, session.csrf_token)
    for wrong in (None, "", session.csrf_token + "x", ConsoleSession.new("c0ffee").csrf_token):
        with pytest.raises(CsrfRejected):
            check_csrf(session.csrf_token, wrong)


def test_login_form_token_is_a_signed_double_submit() -> None:
    signer = Signer("s3cret")
    token, cookie = new_login_token(signer)
    check_login_token(signer, cookie, token)
    other_token, other_cookie = new_login_token(signer)
    with pytest.raises(CsrfRejected):
        check_login_token(signer, cookie, other_token)
    with pytest.raises(CsrfRejected):
        check_login_token(signer, None, token)
    with pytest.raises(CsrfRejected):
        check_login_token(Signer("other"), other_cookie, other_token)
