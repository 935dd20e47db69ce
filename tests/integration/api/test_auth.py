"""Authentication (API keys, client-credentials JWTs) and scopes, as a caller sees them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from governed_api_support import (
    AUDIENCE,
    ISSUER,
    GovernanceFactory,
    IssueKey,
    ManualClock,
    TokenIssuer,
)

from retailsync.api.app import create_app
from retailsync.api.clients import api_key_pepper, create_api_client, revoke_api_client
from retailsync.api.scopes import Scope
from retailsync.api.settings import AuthSettings
from retailsync.bootstrap import Hub

CLIENTS = "/v1/admin/clients"


def test_no_credentials_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.get(CLIENTS)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer realm="retailsync"')
    problem = response.json()
    assert problem["type"].endswith("/unauthenticated")
    assert "X-API-Key" in problem["detail"]


def test_api_key_in_header_or_bearer_is_accepted(client: TestClient, admin_key: str) -> None:
    assert client.get(CLIENTS, headers={"X-API-Key": admin_key}).status_code == 200
    bearer = {"Authorization": f"Bearer {admin_key}"}
    assert client.get(CLIENTS, headers=bearer).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # wrong secret
        lambda key: "rsk_0000000000000000_" + key.split("_", 2)[2],  # unknown id
        lambda key: "rsk_nosecret",  # malformed
    ],
    ids=["wrong-secret", "unknown-id", "malformed"],
)
def test_a_wrong_key_is_401_without_echoing_it(
    client: TestClient, admin_key: str, mangle: object
) -> None:
    assert callable(mangle)
    presented = mangle(admin_key)
    response = client.get(CLIENTS, headers={"X-API-Key": presented})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert presented not in response.text


def test_missing_scope_is_403_naming_it(client: TestClient, issue_key: IssueKey) -> None:
    reader = issue_key("system:read", "experience:read")
    response = client.get(CLIENTS, headers={"X-API-Key": reader})
    assert response.status_code == 403
    problem = response.json()
    assert problem["required_scope"] == "admin"
    assert "'admin'" in problem["detail"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_a_revoked_key_is_refused(client: TestClient, admin_key: str, issue_key: IssueKey) -> None:
    victim = issue_key("admin", name="leaked")
    victim_id = victim.split("_")[1]
    assert client.get(CLIENTS, headers={"X-API-Key": victim}).status_code == 200
    revoked = client.delete(
        f"{CLIENTS}/{victim_id}",
        headers={"X-API-Key": admin_key, "Idempotency-Key": "revoke-leaked"},
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = client.get(CLIENTS, headers={"X-API-Key": victim})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize("cache_seconds", [0.0, 2.0])
def test_a_key_revoked_by_another_process_is_refused_within_the_cache_window(
    hub: Hub,
    build_governance: GovernanceFactory,
    clock: ManualClock,
    issue_key: IssueKey,
    cache_seconds: float,
) -> None:
    app = create_app(
        hub, governance=build_governance(auth=AuthSettings(api_key_cache_seconds=cache_seconds))
    )
    victim = issue_key("admin", name="leaked")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(CLIENTS, headers={"X-API-Key": victim}).status_code == 200
        with hub.engine.begin() as connection:  # as `retailsync clients revoke` does
            revoke_api_client(
                connection, victim.split("_")[1], actor="cli", correlation_id=None, reason="leak"
            )
        still = client.get(CLIENTS, headers={"X-API-Key": victim}).status_code
        assert still == (200 if cache_seconds else 401)
        clock.advance(cache_seconds + 0.01)
        assert client.get(CLIENTS, headers={"X-API-Key": victim}).status_code == 401


def test_the_secret_is_stored_hashed_only(hub: Hub, admin_key: str) -> None:
    import sqlalchemy as sa

    secret = admin_key.split("_", 2)[2]
    with hub.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM api_clients")).all()
    assert rows
    assert all(secret not in str(tuple(row)) for row in rows)


def test_a_client_with_a_given_id_and_secret_is_issued_and_accepted(
    hub: Hub, client: TestClient
) -> None:
    with hub.engine.begin() as connection:
        issued = create_api_client(
            connection,
            name="stable deployment key",
            scopes=[Scope.ADMIN],
            pepper=api_key_pepper(hub.settings.secret_key),
            actor="test:setup",
            correlation_id=None,
            client_id="a1b2c3d4e5f6",
            secret="s" * 40,
        )
    assert issued.key == f"rsk_a1b2c3d4e5f6_{'s' * 40}"
    assert client.get(CLIENTS, headers={"X-API-Key": issued.key}).status_code == 200


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("bad_id", "s" * 40), ("ab", "s" * 40), ("a1b2c3d4", "short")],
)
def test_a_given_id_or_secret_that_would_not_parse_is_refused(
    hub: Hub, client_id: str, secret: str
) -> None:
    with hub.engine.begin() as connection, pytest.raises(ValueError, match="API client id"):
        create_api_client(
            connection,
            name="bad key",
            scopes=[Scope.ADMIN],
            pepper=api_key_pepper(hub.settings.secret_key),
            actor="test:setup",
            correlation_id=None,
            client_id=client_id,
            secret=secret,
        )


# --- OAuth2 client-credentials bearer tokens ---------------------------------------------


@pytest.fixture
def jwt_client(hub: Hub, build_governance: GovernanceFactory, issuer: TokenIssuer) -> TestClient:
    auth = AuthSettings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_public_keys=(issuer.public_pem,)
    )
    return TestClient(create_app(hub, governance=build_governance(auth=auth)))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_with_the_scope_is_accepted(
    jwt_client: TestClient, issuer: TokenIssuer
) -> None:
    response = jwt_client.get(CLIENTS, headers=_bearer(issuer.token("openid admin")))
    assert response.status_code == 200


def test_scp_claim_is_read_too(jwt_client: TestClient, issuer: TokenIssuer) -> None:
    token = issuer.token(scope=None, scp=["admin"])
    assert jwt_client.get(CLIENTS, headers=_bearer(token)).status_code == 200


def test_a_token_without_the_scope_is_403(jwt_client: TestClient, issuer: TokenIssuer) -> None:
    response = jwt_client.get(CLIENTS, headers=_bearer(issuer.token("system:read")))
    assert response.status_code == 403
    assert response.json()["required_scope"] == "admin"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "another-api"}, "audience"),
        ({"iss": "https://evil.test/"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"sub": None}, "sub"),
    ],
    ids=["audience", "issuer", "expired", "no-subject"],
)
def test_tokens_that_do_not_fit_are_401(
    jwt_client: TestClient, issuer: TokenIssuer, overrides: dict[str, object], reason: str
) -> None:
    response = jwt_client.get(CLIENTS, headers=_bearer(issuer.token("admin", **overrides)))
    assert response.status_code == 401
    assert reason in response.json()["detail"].lower()


def test_a_token_from_another_key_is_401(jwt_client: TestClient) -> None:
    stranger = TokenIssuer()
    response = jwt_client.get(CLIENTS, headers=_bearer(stranger.token("admin")))
    assert response.status_code == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_unsigned_and_hmac_tokens_are_refused(jwt_client: TestClient, issuer: TokenIssuer) -> None:
    claims = jwt.decode(issuer.token("admin"), options={"verify_signature": False})
    payload = _b64(json.dumps(claims).encode())
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
    # The public key used as an HMAC secret: the classic algorithm-confusion forgery.
    hs256_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{hs256_header}.{payload}"
    mac = hmac.new(issuer.public_pem.encode(), signing_input.encode(), hashlib.sha256)
    forged = f"{signing_input}.{_b64(mac.digest())}"
    for token in (unsigned, forged):
        response = jwt_client.get(CLIENTS, headers=_bearer(token))
        assert response.status_code == 401, token
        assert "not allowed" in response.json()["detail"]


def test_bearer_tokens_are_refused_when_no_issuer_is_configured(
    client: TestClient, issuer: TokenIssuer
) -> None:
    response = client.get(CLIENTS, headers=_bearer(issuer.token("admin")))
    assert response.status_code == 401
    assert "not accepted" in response.json()["detail"]


def test_jwt_settings_refuse_symmetric_algorithms_and_missing_audience() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        AuthSettings(jwt_algorithms=("HS256",))
    with pytest.raises(ValueError, match="jwt_audience"):
        AuthSettings(jwt_issuer=ISSUER, jwks_url="https://idp.retailer.test/jwks")


# --- JWKS ----------------------------------------------------------------------------------


class JwksServer:
    """The issuer's JWKS endpoint, as an httpx transport (the edge we cannot reach)."""

    def __init__(self, *issuers: TokenIssuer) -> None:
        self.issuers = list(issuers)
        self.fetches = 0
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json={"keys": [issuer.jwk() for issuer in self.issuers]})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


@pytest.fixture
def jwks_setup(
    hub: Hub, build_governance: GovernanceFactory, issuer: TokenIssuer
) -> tuple[TestClient, JwksServer]:
    server = JwksServer(issuer)
    auth = AuthSettings(
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_url="https://idp.retailer.test/.well-known/jwks.json",
        jwks_cache_seconds=300,
        jwks_min_refresh_seconds=30,
    )
    governance = build_governance(auth=auth, jwks_transport=server.transport)
    return TestClient(create_app(hub, governance=governance)), server


def test_jwks_keys_are_fetched_once_and_cached(
    jwks_setup: tuple[TestClient, JwksServer], issuer: TokenIssuer
) -> None:
    client, server = jwks_setup
    for _ in range(3):
        assert client.get(CLIENTS, headers=_bearer(issuer.token("admin"))).status_code == 200
    assert server.fetches == 1


def test_a_rotated_key_is_picked_up_by_refetching(
    jwks_setup: tuple[TestClient, JwksServer], issuer: TokenIssuer, clock: ManualClock
) -> None:
    client, server = jwks_setup
    assert client.get(CLIENTS, headers=_bearer(issuer.token("admin"))).status_code == 200
    rotated = TokenIssuer()
    server.issuers.append(rotated)
    clock.advance(31)
    assert client.get(CLIENTS, headers=_bearer(rotated.token("admin"))).status_code == 200
    assert server.fetches == 2
    # An unknown kid does not make the hub hammer the issuer.
    stranger = TokenIssuer()
    for _ in range(3):
        assert client.get(CLIENTS, headers=_bearer(stranger.token("admin"))).status_code == 401
    assert server.fetches == 2


def test_issuer_down_without_cached_keys_is_503_then_stale_keys_keep_working(
    jwks_setup: tuple[TestClient, JwksServer], issuer: TokenIssuer, clock: ManualClock
) -> None:
    client, server = jwks_setup
    server.down = True
    response = client.get(CLIENTS, headers=_bearer(issuer.token("admin")))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    server.down = False
    assert client.get(CLIENTS, headers=_bearer(issuer.token("admin"))).status_code == 200
    server.down = True
    clock.advance(301)  # cache stale, issuer down: the keys we have still verify
    assert client.get(CLIENTS, headers=_bearer(issuer.token("admin"))).status_code == 200
