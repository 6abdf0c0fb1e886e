"""Contract section 5 for every endpoint: who gets 401, who gets 403, who gets through."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from permstore.services.auth import AUDIENCE, ISSUER, KeyPair, TokenIssuer, load_or_create_dev_keys
from permstore.services.auth_settings import AuthSettings
from tests.e2e.helpers import (
    TokenFactory,
    assert_error,
    audit_check_path,
    audit_events_path,
    grant,
    permissions_path,
    who_can_path,
)
from tests.support.stack import ManagedProcess

pytestmark = pytest.mark.e2e

ALL_SCOPES = ("check", "write", "audit", "admin")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of section 4, how to call it for a tenant, and the scope it needs."""

    name: str
    scope: str
    request: Callable[[str], dict[str, Any]]
    ok_status: int = 200


def _events(tenant: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": "/v1/events",
        "json": {"events": [grant(tenant, "user:a", "doc:auth", "read")]},
    }


def _check(tenant: str) -> dict[str, Any]:
    body = {"tenant": tenant, "principal": "user:a", "resource": "doc:auth", "action": "read"}
    return {"method": "POST", "url": "/v1/check", "json": body}


def _batch(tenant: str) -> dict[str, Any]:
    item = {"principal": "user:a", "resource": "doc:auth", "action": "read"}
    return {
        "method": "POST",
        "url": "/v1/check/batch",
        "json": {"tenant": tenant, "checks": [item]},
    }


def _permissions(tenant: str) -> dict[str, Any]:
    return {"method": "GET", "url": permissions_path(tenant, "user:a")}


def _who_can(tenant: str) -> dict[str, Any]:
    return {"method": "GET", "url": who_can_path(tenant, "doc:auth"), "params": {"action": "read"}}


def _audit_events(tenant: str) -> dict[str, Any]:
    return {"method": "GET", "url": audit_events_path(tenant), "params": {"principal": "user:a"}}


def _audit_check(tenant: str) -> dict[str, Any]:
    params = {"principal": "user:a", "resource": "doc:auth", "action": "read"}
    params["at"] = "2026-01-01T00:00:00Z"
    return {"method": "GET", "url": audit_check_path(tenant), "params": params}


def _freshness(tenant: str) -> dict[str, Any]:
    return {"method": "GET", "url": f"/v1/tenants/{tenant}/freshness"}


ENDPOINTS = [
    Endpoint("post_events", "write", _events, 202),
    Endpoint("check", "check", _check),
    Endpoint("check_batch", "check", _batch),
    Endpoint("permissions", "check", _permissions),
    Endpoint("who_can", "check", _who_can),
    Endpoint("audit_events", "audit", _audit_events),
    Endpoint("audit_check", "audit", _audit_check),
    Endpoint("freshness", "check", _freshness),
]
ENDPOINT_IDS = [e.name for e in ENDPOINTS]


@pytest.fixture
def client(api_url: str) -> Iterator[httpx.Client]:
    """A client with no default headers."""
    with httpx.Client(base_url=api_url, timeout=30) as http:
        yield http


def call(client: httpx.Client, endpoint: Endpoint, tenant: str, auth: str | None) -> httpx.Response:
    """Call endpoint for tenant with an Authorization header value (or none)."""
    request = endpoint.request(tenant)
    headers = {} if auth is None else {"Authorization": auth}
    return client.request(headers=headers, **request)


def dev_keys() -> KeyPair:
    """The key pair the running API trusts (the same files the issue_token fixture uses)."""
    return load_or_create_dev_keys(AuthSettings().keys_dir)


def claims(tenant: str, scopes: list[str], **override: Any) -> dict[str, Any]:
    """Valid claims, with some replaced."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "service:forger",
        "tenant": tenant,
        "scopes": scopes,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    body.update(override)
    return body


def b64(data: bytes) -> str:
    """base64url without padding, as in a JWT."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tampered(token: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The token with its payload edited and the original signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(data)
    return f"{header}.{b64(json.dumps(data).encode())}.{signature}"


def bad_credentials(tenant: str, issue_token: TokenFactory) -> dict[str, str | None]:
    """Authorization header values that must all answer 401, by name."""
    keys = dev_keys()
    scopes = list(ALL_SCOPES)
    valid = issue_token(tenant, ",".join(scopes))
    check_only = issue_token(tenant, "check")
    private = keys.private_key_pem
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = TokenIssuer(private, keys.key_id, clock=lambda: past).issue(
        "service:old", tenant, scopes, timedelta(hours=1)
    )
    stranger = KeyPair.generate()
    other_key = stranger.issuer().issue("service:x", tenant, scopes, timedelta(hours=1))
    other_key_our_kid = TokenIssuer(stranger.private_key_pem, keys.key_id).issue(
        "service:x", tenant, scopes, timedelta(hours=1)
    )
    none_alg = (
        b64(json.dumps({"alg": "none", "typ": "JWT", "kid": keys.key_id}).encode())
        + "."
        + b64(json.dumps(claims(tenant, scopes)).encode())
        + "."
    )
    # The classic confusion attack: HMAC "signed" with the public key as the secret.
    hs_head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keys.key_id}).encode())
    hs_body = b64(json.dumps(claims(tenant, scopes)).encode())
    mac = hmac.new(keys.public_key_pem, f"{hs_head}.{hs_body}".encode(), hashlib.sha256)
    hs256 = f"{hs_head}.{hs_body}.{b64(mac.digest())}"

    def signed(**override: Any) -> str:
        return jwt.encode(
            {**claims(tenant, scopes), **override},
            private,
            algorithm="EdDSA",
            headers={"kid": keys.key_id},
        )

    return {
        "missing": None,
        "empty": "",
        "scheme_only": "Bearer",
        "basic_scheme": "Basic dXNlcjpwYXNz",
        "not_a_jwt": "Bearer abc",
        "three_garbage_parts": "Bearer a.b.c",
        "bad_characters": "Bearer eyJ<script>.x.y",
        "two_credentials": f"Bearer {valid} {valid}",
        "too_long": "Bearer " + "a" * 9000,
        "unknown_api_key": "Bearer psk_" + "x" * 40,
        "expired": f"Bearer {expired}",
        "other_key": f"Bearer {other_key}",
        "other_key_claiming_our_kid": f"Bearer {other_key_our_kid}",
        "tampered_tenant": f"Bearer {tampered(valid, lambda c: c.update(tenant='*'))}",
        "tampered_scopes": f"Bearer {tampered(check_only, lambda c: c.update(scopes=scopes))}",
        "tampered_expiry": f"Bearer {tampered(expired, lambda c: c.update(exp=c['exp'] + 86400))}",
        "truncated_signature": f"Bearer {valid[:-4]}",
        "alg_none": f"Bearer {none_alg}",
        "alg_hs256_with_public_key": f"Bearer {hs256}",
        "wrong_audience": f"Bearer {signed(aud='someone-else')}",
        "wrong_issuer": f"Bearer {signed(iss='someone-else')}",
        "not_yet_valid": f"Bearer {signed(nbf=int(time.time()) + 3600)}",
        "missing_jti": f"Bearer {signed(jti=None)}",
        "unknown_scope": f"Bearer {signed(scopes=['check', 'superuser'])}",
        "bad_tenant_claim": f"Bearer {signed(tenant='Not A Tenant')}",
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_bad_credentials_are_401(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, endpoint: Endpoint
) -> None:
    """No token, a malformed, expired, foreign-key, tampered or forged one: 401 everywhere."""
    for name, auth in bad_credentials(tenant, issue_token).items():
        response = call(client, endpoint, tenant, auth)
        error = assert_error(response, 401)
        assert error["code"] == "unauthenticated", name
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), name


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_token_of_another_tenant_is_403(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, endpoint: Endpoint
) -> None:
    """A token holding every scope but for another tenant is refused with 403."""
    token = issue_token(tenant + "-other", ",".join(ALL_SCOPES))
    error = assert_error(call(client, endpoint, tenant, f"Bearer {token}"), 403)
    assert error["code"] == "forbidden"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_token_missing_the_needed_scope_is_403(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, endpoint: Endpoint
) -> None:
    """Every other scope, admin included, does not stand in for the one needed."""
    others = [s for s in ALL_SCOPES if s != endpoint.scope]
    for scopes in [others, *([s] for s in others)]:
        token = issue_token(tenant, ",".join(scopes))
        error = assert_error(call(client, endpoint, tenant, f"Bearer {token}"), 403)
        assert error["code"] == "forbidden", scopes
    operator = issue_token("*", ",".join(others))
    assert_error(call(client, endpoint, tenant, f"Bearer {operator}"), 403)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_the_needed_scope_alone_is_enough(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, endpoint: Endpoint
) -> None:
    """The positive control of the matrix: the right tenant and scope get through."""
    token = issue_token(tenant, endpoint.scope)
    response = call(client, endpoint, tenant, f"Bearer {token}")
    assert response.status_code == endpoint.ok_status, response.text


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_operator_token_works_on_any_tenant(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, endpoint: Endpoint
) -> None:
    """Tenant '*' with the needed scope may act on every tenant."""
    token = issue_token("*", endpoint.scope)
    for name in (tenant, tenant + "-second"):
        response = call(client, endpoint, name, f"Bearer {token}")
        assert response.status_code == endpoint.ok_status, response.text


def test_lowercase_bearer_scheme_is_accepted(
    client: httpx.Client, tenant: str, issue_token: TokenFactory
) -> None:
    """The auth scheme is case-insensitive (RFC 7235)."""
    token = issue_token(tenant, "check")
    response = call(client, ENDPOINTS[1], tenant, f"bearer {token}")
    assert response.status_code == 200, response.text


def test_operations_endpoints_need_no_token(client: httpx.Client) -> None:
    """/healthz, /readyz and /metrics answer without a token."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "permstore_http_requests_total" in metrics.text


def test_forbidden_calls_are_logged(
    client: httpx.Client, tenant: str, issue_token: TokenFactory, api_process: ManagedProcess
) -> None:
    """A call outside the token's tenant or scopes is logged with the token id, not the token."""
    wrong_tenant = issue_token(tenant + "-other", "check")
    wrong_scope = issue_token(tenant, "write")
    for token, reason in ((wrong_tenant, "wrong_tenant"), (wrong_scope, "missing_scope:check")):
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        assert_error(call(client, ENDPOINTS[1], tenant, f"Bearer {token}"), 403)
        deadline = time.monotonic() + 5
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not lines:
            text = api_process.log_path.read_text(errors="replace")
            assert token not in text, "the credential itself must never be logged"
            lines = [
                json.loads(line)
                for line in text.splitlines()
                if jti in line and line.startswith("{")
            ]
            time.sleep(0.05)
        assert lines, f"no log line for token {jti}"
        assert lines[-1]["event"] == "auth.forbidden"
        assert lines[-1]["reason"] == reason


@pytest.mark.parametrize("endpoint", ENDPOINTS[:3], ids=ENDPOINT_IDS[:3])
def test_anonymous_invalid_body_is_still_401(
    client: httpx.Client, tenant: str, endpoint: Endpoint
) -> None:
    """Authentication comes before validation: an anonymous caller learns nothing of the
    body rules."""
    request = endpoint.request(tenant)
    request["json"] = {"tenant": "Not Valid", "unexpected": [1, 2, 3]}
    error = assert_error(client.request(**request), 401)
    assert error["code"] == "unauthenticated"
