"""Caller authentication: JWT issue/verify, key rotation, API keys, settings and the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from permstore.services import auth
from permstore.services.auth import (
    ApiKeyStore,
    AuthenticationError,
    Authenticator,
    Caller,
    KeyPair,
    Scope,
    TokenIssuer,
    TokenVerifier,
    generate_api_key,
    hash_api_key,
    load_or_create_dev_keys,
    load_verification_keys,
)
from permstore.services.auth_settings import AuthSettings, build_authenticator, build_issuer
from permstore.services.cli.tokens import parse_ttl, token_app

HOUR = timedelta(hours=1)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    pad = "=="
    return (
        json.loads(base64.urlsafe_b64decode(header + pad)),
        json.loads(base64.urlsafe_b64decode(payload + pad)),
        signature,
    )


def _forge(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), signature]
    )


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token)
    return info.value.reason


@pytest.fixture
def pair() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture
def verifier(pair: KeyPair) -> TokenVerifier:
    return TokenVerifier(pair.verification_keys())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in [
        "PERMSTORE_ENV",
        "PERMSTORE_AUTH_KEYS_DIR",
        "PERMSTORE_AUTH_PUBLIC_KEY_FILES",
        "PERMSTORE_AUTH_PRIVATE_KEY_FILE",
        "PERMSTORE_AUTH_API_KEYS_FILE",
        "PERMSTORE_AUTH_DEV_MODE",
    ]:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


# --- JWT roundtrip and rejection -------------------------------------------------------------


def test_issue_verify_roundtrip(pair: KeyPair, verifier: TokenVerifier) -> None:
    token = pair.issuer().issue("user:alice", "acme", [Scope.CHECK, "write"], HOUR)
    caller = verifier.verify(token)
    assert caller.subject == "user:alice"
    assert caller.tenant == "acme"
    assert caller.scopes == frozenset({Scope.CHECK, Scope.WRITE})
    assert caller.token_id
    header, claims, _ = _segments(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == pair.key_id
    assert claims["iss"] == "permstore"
    assert claims["aud"] == "permstore"
    assert claims["exp"] - claims["iat"] == 3600


def test_operator_tenant_star(pair: KeyPair, verifier: TokenVerifier) -> None:
    caller = verifier.verify(pair.issuer().issue("ops", "*", "admin", HOUR))
    assert caller.tenant == "*"
    assert caller.is_operator


def test_expired_token_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    issuer = TokenIssuer(pair.private_key_pem, pair.key_id, clock=lambda: past)
    assert _reason(verifier, issuer.issue("u", "acme", "check", HOUR)) == "expired"


def test_expiry_leeway_tolerates_small_skew(pair: KeyPair, verifier: TokenVerifier) -> None:
    # Expired 10 s ago: within the 30 s leeway for clock skew.
    past = datetime.now(UTC) - timedelta(seconds=70)
    issuer = TokenIssuer(pair.private_key_pem, pair.key_id, clock=lambda: past)
    assert (
        verifier.verify(issuer.issue("u", "acme", "check", timedelta(minutes=1))).tenant == "acme"
    )


def test_tampered_payload_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    token = pair.issuer().issue("user:alice", "acme", "check", HOUR)
    header, claims, signature = _segments(token)
    claims["tenant"] = "other"
    claims["scopes"] = ["admin"]
    assert _reason(verifier, _forge(header, claims, signature)) == "bad_signature"


def test_signature_from_other_key_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    other = KeyPair.generate()
    # Same kid as the trusted key, but signed by a different private key.
    forged = TokenIssuer(other.private_key_pem, pair.key_id).issue("u", "acme", "check", HOUR)
    assert _reason(verifier, forged) == "bad_signature"


def test_unknown_kid_rejected(verifier: TokenVerifier) -> None:
    other = KeyPair.generate()
    assert _reason(verifier, other.issuer().issue("u", "acme", "check", HOUR)) == "unknown_key"


def test_missing_kid_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    header, claims, signature = _segments(pair.issuer().issue("u", "acme", "check", HOUR))
    del header["kid"]
    assert _reason(verifier, _forge(header, claims, signature)) == "malformed"


def test_alg_none_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    _, claims, _ = _segments(pair.issuer().issue("u", "acme", "admin", HOUR))
    token = _forge({"alg": "none", "typ": "JWT", "kid": pair.key_id}, claims, "")
    assert _reason(verifier, token) == "bad_algorithm"
    token = _forge({"alg": "None", "typ": "JWT", "kid": pair.key_id}, claims, "")
    assert _reason(verifier, token) == "bad_algorithm"


def test_hs256_with_public_key_as_secret_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    # Classic confusion: an attacker HMACs with the (public) verification key as the secret.
    _, claims, _ = _segments(pair.issuer().issue("u", "acme", "admin", HOUR))
    header = {"alg": "HS256", "typ": "JWT", "kid": pair.key_id}
    signing_input = ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())])
    mac = hmac.new(pair.public_key_pem, signing_input.encode(), hashlib.sha256).digest()
    assert _reason(verifier, f"{signing_input}.{_b64(mac)}") == "bad_algorithm"


def test_wrong_audience_and_issuer_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    private = auth._load_private_key(pair.private_key_pem)
    now = int(datetime.now(UTC).timestamp())
    base = {"sub": "u", "tenant": "acme", "scopes": ["check"], "iat": now, "exp": now + 60}
    headers = {"kid": pair.key_id}
    wrong_aud = jwt.encode(
        {**base, "iss": "permstore", "aud": "other", "jti": "a"}, private, "EdDSA", headers
    )
    wrong_iss = jwt.encode(
        {**base, "iss": "other", "aud": "permstore", "jti": "b"}, private, "EdDSA", headers
    )
    assert _reason(verifier, wrong_aud) == "bad_audience"
    assert _reason(verifier, wrong_iss) == "bad_issuer"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("tenant", "Acme", "malformed"),
        ("tenant", "-acme", "malformed"),
        ("tenant", "a" * 64, "malformed"),
        ("tenant", ["acme"], "malformed"),
        ("tenant", "acme\n", "malformed"),
        ("scopes", "check", "malformed"),
        ("scopes", ["root"], "unknown_scope"),
        ("scopes", [], "unknown_scope"),
        ("sub", "has space", "malformed"),
        ("jti", 5, "malformed"),
    ],
)
def test_bad_claims_rejected_even_when_signed(
    pair: KeyPair, verifier: TokenVerifier, field: str, value: Any, reason: str
) -> None:
    private = auth._load_private_key(pair.private_key_pem)
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "permstore",
        "aud": "permstore",
        "sub": "u",
        "tenant": "acme",
        "scopes": ["check"],
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
        field: value,
    }
    token = jwt.encode(claims, private, "EdDSA", {"kid": pair.key_id})
    assert _reason(verifier, token) == reason


def test_missing_exp_rejected(pair: KeyPair, verifier: TokenVerifier) -> None:
    private = auth._load_private_key(pair.private_key_pem)
    claims: dict[str, Any] = {"iss": "permstore", "aud": "permstore", "sub": "u", "tenant": "acme"}
    claims |= {"jti": "j", "iat": int(datetime.now(UTC).timestamp())}
    token = jwt.encode({**claims, "scopes": ["check"]}, private, "EdDSA", {"kid": pair.key_id})
    assert _reason(verifier, token) == "malformed"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 10_000, "eyJ.eyJ.sig"])
def test_garbage_is_malformed(verifier: TokenVerifier, garbage: str) -> None:
    assert _reason(verifier, garbage) == "malformed"


def test_error_messages_never_contain_the_token(pair: KeyPair, verifier: TokenVerifier) -> None:
    other = KeyPair.generate()
    token = other.issuer().issue("u", "acme", "check", HOUR)
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token)
    assert token not in str(info.value)
    assert info.value.__cause__ is None


def test_issue_refuses_bad_input(pair: KeyPair) -> None:
    issuer = pair.issuer()
    with pytest.raises(ValueError, match="tenant"):
        issuer.issue("u", "Bad Tenant", "check", HOUR)
    with pytest.raises(ValueError, match="unknown scope"):
        issuer.issue("u", "acme", "check,root", HOUR)
    with pytest.raises(ValueError, match="ttl"):
        issuer.issue("u", "acme", "check", timedelta(0))
    with pytest.raises(ValueError, match="subject"):
        issuer.issue("", "acme", "check", HOUR)


def test_verifier_rejects_non_ed25519_keys() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="Ed25519"):
        TokenVerifier({"k": ec_pem})
    with pytest.raises(ValueError):
        TokenVerifier({})


# --- rotation --------------------------------------------------------------------------------


def test_rotation_accepts_both_keys_then_drops_removed(pair: KeyPair) -> None:
    new = KeyPair.generate()
    old_token = pair.issuer().issue("u", "acme", "check", HOUR)
    new_token = new.issuer().issue("u", "acme", "check", HOUR)

    both = TokenVerifier({pair.key_id: pair.public_key_pem, new.key_id: new.public_key_pem})
    assert both.verify(old_token).tenant == "acme"
    assert both.verify(new_token).tenant == "acme"
    assert both.key_ids == {pair.key_id, new.key_id}

    rotated = TokenVerifier(load_verification_keys([new.public_key_pem]))
    assert rotated.verify(new_token).tenant == "acme"
    assert _reason(rotated, old_token) == "unknown_key"


# --- caller scoping --------------------------------------------------------------------------


def test_caller_scoping() -> None:
    caller = Caller("user:alice", "acme", frozenset({Scope.CHECK}), "j")
    assert caller.may_access("acme")
    assert not caller.may_access("other")
    assert not caller.may_access("*")
    assert caller.has_scope(Scope.CHECK)
    assert not caller.has_scope(Scope.WRITE)
    assert caller.denial_reason("acme", Scope.CHECK) is None
    assert caller.denial_reason("other", Scope.CHECK) == "wrong_tenant"
    assert caller.denial_reason("acme", Scope.AUDIT) == "missing_scope:audit"

    operator = Caller("ops", "*", frozenset({Scope.ADMIN}), "j")
    assert operator.may_access("acme")
    assert operator.may_access("other")
    # admin does not imply the other scopes.
    assert not operator.has_scope(Scope.CHECK)


# --- key files -------------------------------------------------------------------------------


def test_dev_keys_created_once_with_private_mode(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = load_or_create_dev_keys(keys_dir)
    private = keys_dir / "dev-signing-key.pem"
    public = keys_dir / "dev-signing-key.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_bytes() == first.public_key_pem
    assert len(first.key_id) == 16
    assert first.key_id == auth.key_id_for(auth._load_public_key(first.public_key_pem))

    second = load_or_create_dev_keys(keys_dir)
    assert second == first
    assert [p.name for p in keys_dir.iterdir() if p.name.startswith(".")] == []
    assert "PRIVATE" not in repr(first)

    # Verification keys load from a path or PEM text alike.
    assert load_verification_keys([public]) == load_verification_keys([public.read_text()])


# --- API keys --------------------------------------------------------------------------------


def test_api_key_generation_and_hashed_storage(tmp_path: Path) -> None:
    key, line = generate_api_key("service:ci", "acme", "check,write")
    assert key.startswith("psk_")
    assert key not in line
    digest, subject, tenant, scopes = line.split(" ")
    assert digest == hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert (subject, tenant, scopes) == ("service:ci", "acme", "check,write")

    path = tmp_path / "keys" / "api-keys"
    auth.append_api_key_line(path, line)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in path.read_text()

    caller = ApiKeyStore.from_file(path).verify(key)
    assert caller == Caller(
        "service:ci", "acme", frozenset({Scope.CHECK, Scope.WRITE}), f"psk:{digest[:12]}"
    )


def test_api_key_wrong_or_malformed_rejected() -> None:
    key, line = generate_api_key("svc", "acme", "check")
    other, _ = generate_api_key("svc", "acme", "check")
    store = ApiKeyStore(["# comment", "", line])
    assert len(store) == 1
    with pytest.raises(AuthenticationError, match="unknown_api_key"):
        store.verify(other)
    with pytest.raises(AuthenticationError, match="unknown_api_key"):
        store.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(AuthenticationError, match="malformed"):
        store.verify("psk_short")
    with pytest.raises(AuthenticationError, match="malformed"):
        store.verify("nope")


def test_api_key_verify_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [generate_api_key("svc", "acme", "check") for _ in range(3)]
    store = ApiKeyStore([line for _, line in keys])
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    store.verify(keys[0][0])
    # Every entry is compared, even after the match, so timing leaks nothing.
    assert len(calls) == 3


@pytest.mark.parametrize(
    "line",
    [
        "abc svc acme check",
        f"{'0' * 64} svc acme",
        f"{'0' * 64} svc Acme check",
        f"{'0' * 64} svc acme root",
        f"{'A' * 64} svc acme check",
    ],
)
def test_api_key_file_rejects_bad_lines(line: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        ApiKeyStore([line])


def test_api_key_file_rejects_duplicates() -> None:
    _, line = generate_api_key("svc", "acme", "check")
    with pytest.raises(ValueError, match="duplicate"):
        ApiKeyStore([line, line])


# --- Authenticator ---------------------------------------------------------------------------


def test_authenticator_routes_bearer_values(pair: KeyPair, verifier: TokenVerifier) -> None:
    key, line = generate_api_key("svc", "acme", "audit")
    authenticator = Authenticator(verifier, ApiKeyStore([line]))
    token = pair.issuer().issue("user:alice", "acme", "check", HOUR)

    assert authenticator.authenticate(f"Bearer {token}").subject == "user:alice"
    assert authenticator.authenticate(f"bearer {token}").subject == "user:alice"
    assert authenticator.authenticate(f"Bearer {key}").scopes == {Scope.AUDIT}

    without_keys = Authenticator(verifier)
    with pytest.raises(AuthenticationError, match="api_keys_disabled"):
        without_keys.authenticate(f"Bearer {key}")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("Basic dXNlcjpwYXNz", "bad_scheme"),
        ("Bearer", "bad_scheme"),
        ("Bearer a b", "bad_scheme"),
        ("Bearer tok\u00e9n", "malformed"),
        ("Bearer " + "a" * 20_000, "malformed"),
    ],
)
def test_authenticator_header_errors(
    verifier: TokenVerifier, header: str | None, reason: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        Authenticator(verifier).authenticate(header)
    assert info.value.reason == reason


# --- settings --------------------------------------------------------------------------------


def test_settings_dev_mode_refused_in_production(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERMSTORE_ENV", "production")
    with pytest.raises(ValidationError, match="DEV_MODE"):
        AuthSettings()
    clean_env.setenv("PERMSTORE_AUTH_DEV_MODE", "false")
    assert AuthSettings().dev_mode is False


def test_settings_public_key_files_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PERMSTORE_AUTH_PUBLIC_KEY_FILES", "a.pem, b.pem")
    assert AuthSettings().public_key_files == [Path("a.pem"), Path("b.pem")]
    clean_env.setenv("PERMSTORE_AUTH_PUBLIC_KEY_FILES", '["c.pem"]')
    assert AuthSettings().public_key_files == [Path("c.pem")]


def test_settings_dev_keys_shared_by_issuer_and_authenticator(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = AuthSettings(keys_dir=tmp_path / "keys")
    token = build_issuer(settings).issue("u", "acme", "check", HOUR)
    assert build_authenticator(settings).authenticate(f"Bearer {token}").tenant == "acme"


def test_settings_without_dev_mode_needs_keys(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = AuthSettings(keys_dir=tmp_path / "none", dev_mode=False)
    with pytest.raises(RuntimeError, match="no verification key"):
        build_authenticator(settings)
    with pytest.raises(RuntimeError, match="no signing key"):
        build_issuer(settings)
    assert not (tmp_path / "none").exists()


def test_settings_explicit_key_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old, new = KeyPair.generate(), KeyPair.generate()
    (tmp_path / "old.pub").write_bytes(old.public_key_pem)
    (tmp_path / "new.pub").write_bytes(new.public_key_pem)
    (tmp_path / "new.key").write_bytes(new.private_key_pem)
    settings = AuthSettings(
        keys_dir=tmp_path / "unused",
        public_key_files=[tmp_path / "old.pub", tmp_path / "new.pub"],
        private_key_file=tmp_path / "new.key",
        dev_mode=False,
    )
    authenticator = build_authenticator(settings)
    for token in [
        old.issuer().issue("u", "acme", "check", HOUR),
        build_issuer(settings).issue("u", "acme", "check", HOUR),
    ]:
        assert authenticator.authenticate(f"Bearer {token}").tenant == "acme"


# --- CLI -------------------------------------------------------------------------------------


runner = CliRunner()


def test_ttl_parsing() -> None:
    assert parse_ttl("30s") == timedelta(seconds=30)
    assert parse_ttl("15m") == timedelta(minutes=15)
    assert parse_ttl("1h") == timedelta(hours=1)
    assert parse_ttl("7d") == timedelta(days=7)
    for bad in ["", "0s", "-1h", "1", "h", "1w", "1.5h", "1 h", "9999d"]:
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_cli_issue_produces_accepted_token(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PERMSTORE_AUTH_KEYS_DIR", str(tmp_path / "keys"))
    result = runner.invoke(
        token_app,
        ["issue", "--subject", "user:alice", "--tenant", "acme", "--scopes", "check,audit"],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token
    caller = build_authenticator(AuthSettings()).authenticate(f"Bearer {token}")
    assert caller.subject == "user:alice"
    assert caller.scopes == {Scope.CHECK, Scope.AUDIT}
    _, claims, _ = _segments(token)
    assert claims["exp"] - claims["iat"] == 3600


def test_cli_issue_ttl_option(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PERMSTORE_AUTH_KEYS_DIR", str(tmp_path / "keys"))
    args = ["issue", "--subject", "ops", "--tenant", "*", "--scopes", "admin", "--ttl", "15m"]
    result = runner.invoke(token_app, args)
    assert result.exit_code == 0, result.output
    _, claims, _ = _segments(result.stdout.strip())
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "acme", "--scopes", "check,root"], "unknown scope 'root'"),
        (["--tenant", "Not Valid", "--scopes", "check"], "invalid --tenant"),
        (["--tenant", "acme", "--scopes", "check", "--ttl", "1y"], "invalid --ttl"),
    ],
)
def test_cli_issue_bad_input_exit_2(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, args: list[str], message: str
) -> None:
    clean_env.setenv("PERMSTORE_AUTH_KEYS_DIR", str(tmp_path / "keys"))
    result = runner.invoke(token_app, ["issue", "--subject", "u", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr
    # Bad input is refused before any key is created.
    assert not (tmp_path / "keys").exists()


def test_cli_api_key_create(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "api-keys"
    clean_env.setenv("PERMSTORE_AUTH_API_KEYS_FILE", str(path))
    args = ["api-key", "create", "--subject", "service:ci", "--tenant", "acme", "--scopes", "write"]
    result = runner.invoke(token_app, args)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("psk_")
    assert key not in path.read_text()
    assert key not in result.stderr
    assert ApiKeyStore.from_file(path).verify(key).scopes == {Scope.WRITE}

    second = runner.invoke(token_app, args)
    assert len(ApiKeyStore.from_file(path)) == 2
    assert second.stdout.strip() != key


def test_cli_api_key_create_needs_a_file(clean_env: pytest.MonkeyPatch) -> None:
    args = ["api-key", "create", "--subject", "s", "--tenant", "acme", "--scopes", "check"]
    result = runner.invoke(token_app, args)
    assert result.exit_code == 2
    assert "PERMSTORE_AUTH_API_KEYS_FILE" in result.stderr
