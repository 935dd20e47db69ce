"""Pure pieces of the API governance: key format and hashing, token scopes, rate buckets,
request fingerprints, deprecation headers, settings validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retailsync.api.clients import api_key_pepper, looks_like_api_key, parse_api_key
from retailsync.api.errors import InvalidCredentials, UnknownScope
from retailsync.api.idempotency import request_fingerprint
from retailsync.api.ratelimit import ClientRateLimiter
from retailsync.api.scopes import Principal, RouteClass, Scope
from retailsync.api.settings import RateLimitSettings, RouteClassLimit, governance_settings
from retailsync.api.tokens import token_scopes
from retailsync.api.versioning import DeprecationNotice
from retailsync.config import Settings


def test_a_key_splits_into_id_and_secret_even_when_the_secret_has_underscores() -> None:
    assert parse_api_key("rsk_0123abcd_se_cr_et") == ("0123abcd", "se_cr_et")
    for malformed in ("rsk_", "rsk_abc", "xyz_abc_def", "", "rsk__secret"):
        with pytest.raises(InvalidCredentials):
            parse_api_key(malformed)
    assert looks_like_api_key("rsk_a_b")
    assert not looks_like_api_key("eyJhbGciOi.payload.sig")


def test_the_pepper_depends_on_the_secret_key() -> None:
    assert api_key_pepper("one") != api_key_pepper("two")
    assert api_key_pepper("one") == api_key_pepper("one")
    assert len(api_key_pepper("one")) == 32


def test_token_scopes_come_from_scope_or_scp_and_ignore_foreign_ones() -> None:
    assert token_scopes({"scope": "openid admin system:read"}) == {Scope.ADMIN, Scope.SYSTEM_READ}
    assert token_scopes({"scp": ["process:write", "other-api:read"]}) == {Scope.PROCESS_WRITE}
    assert token_scopes({"scp": "experience:read"}) == {Scope.EXPERIENCE_READ}
    assert token_scopes({}) == frozenset()


def test_unknown_scopes_are_named() -> None:
    with pytest.raises(UnknownScope, match=r"'root'.*system:read"):
        Scope.parse("root")


def _principal(client_id: str) -> Principal:
    return Principal(client_id=client_id, name=client_id, scopes=frozenset(), auth_method="api_key")


def test_a_bucket_per_client_and_route_class_refills_over_the_period() -> None:
    now = [0.0]
    limiter = ClientRateLimiter(
        RateLimitSettings(
            read=RouteClassLimit(limit=12, period_seconds=60, burst=2),
            write=RouteClassLimit(limit=3, period_seconds=60, burst=1),
        ),
        clock=lambda: now[0],
    )
    agent = _principal("agent")
    assert limiter.wait_seconds(agent, RouteClass.READ) == 0
    assert limiter.wait_seconds(agent, RouteClass.READ) == 0
    wait = limiter.wait_seconds(agent, RouteClass.READ)
    assert wait == pytest.approx(6.0)  # (12 - 2) tokens per 60 s
    assert limiter.wait_seconds(agent, RouteClass.WRITE) == 0  # another class, another bucket
    assert limiter.wait_seconds(_principal("batch"), RouteClass.READ) == 0  # another client
    now[0] += 6.0
    assert limiter.wait_seconds(agent, RouteClass.READ) == 0


def test_a_burst_must_leave_room_to_refill() -> None:
    with pytest.raises(ValueError, match="burst"):
        RouteClassLimit(limit=10, burst=10)


def test_fingerprints_differ_by_method_path_query_and_body() -> None:
    base = request_fingerprint("POST", "/v1/x", "", b"{}")
    assert base == request_fingerprint("post", "/v1/x", "", b"{}")
    variants = [
        request_fingerprint("PUT", "/v1/x", "", b"{}"),
        request_fingerprint("POST", "/v1/y", "", b"{}"),
        request_fingerprint("POST", "/v1/x", "a=1", b"{}"),
        request_fingerprint("POST", "/v1/x", "", b'{"a":1}'),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_deprecation_headers_follow_rfc_9745_and_8594() -> None:
    notice = DeprecationNotice(
        deprecated_at=datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC),
        sunset=datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC),
    )
    assert notice.headers() == [
        ("Deprecation", "@1688169599"),
        ("Sunset", "Sun, 30 Jun 2024 23:59:59 GMT"),
    ]


def test_governance_settings_fall_back_to_defaults() -> None:
    settings = governance_settings(Settings())
    assert settings.auth.accepts_jwt is False
    assert settings.rate_limits.enabled is True
    assert settings.idempotency.retention_hours == 24
