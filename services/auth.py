"""Caller authentication: signed EdDSA JWTs, hashed static API keys, and caller scoping.

Contract section 5: a credential names a subject, one tenant (or ``*`` for operators) and
scopes. This module turns an ``Authorization`` header into a :class:`Caller` or raises
:class:`AuthenticationError` with a short reason that is safe to log. It never includes the
presented credential in messages, since error texts end up in logs and HTTP answers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from permstore.core import identifiers

ISSUER: Final = "permstore"
AUDIENCE: Final = "permstore"
# The only algorithm we sign with or accept; pinning it rules out "none" and HS256/RS256
# confusion attacks where an attacker picks the algorithm in the header.
ALGORITHM: Final = "EdDSA"
# Tolerates clock skew between the issuing host and the service.
LEEWAY: Final = timedelta(seconds=30)
# Operators could mint year-long tokens at most; longer lifetimes are almost surely mistakes.
MAX_TTL: Final = timedelta(days=365)
# Bounds the work done on attacker-supplied input before the signature is checked.
MAX_CREDENTIAL_LENGTH: Final = 8192

ANY_TENANT: Final = "*"
API_KEY_PREFIX: Final = "psk_"
DEV_PRIVATE_KEY_FILE: Final = "dev-signing-key.pem"
DEV_PUBLIC_KEY_FILE: Final = "dev-signing-key.pub.pem"

TENANT_RE: Final = identifiers.TENANT_RE
# Subjects are free-form names (user:alice, ci-bot), but no whitespace: the API key file
# is whitespace separated and subjects end up in log lines.
SUBJECT_RE: Final = re.compile(r"[A-Za-z0-9._@:/+-]{1,256}")
KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
JTI_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
API_KEY_RE: Final = re.compile(r"psk_[A-Za-z0-9_-]{20,256}")
_SHA256_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
# RFC 6750 token68 characters; anything else cannot be a JWT or one of our API keys.
_CREDENTIAL_RE: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")

TENANT_RULE: Final = "tenant must match [a-z0-9][a-z0-9_-]{0,62} or be '*'"
SUBJECT_RULE: Final = "subject must match [A-Za-z0-9._@:/+-]{1,256}"


class Scope(StrEnum):
    """What a caller may do (contract section 5)."""

    CHECK = "check"
    WRITE = "write"
    AUDIT = "audit"
    ADMIN = "admin"


class AuthenticationError(Exception):
    """The credential is missing or not acceptable; ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: who, for which tenant, with which scopes."""

    subject: str
    tenant: str
    scopes: frozenset[Scope]
    token_id: str
    expires_at: float = float("inf")

    @property
    def is_operator(self) -> bool:
        """True when the caller may act on every tenant."""
        return self.tenant == ANY_TENANT

    def may_access(self, tenant: str) -> bool:
        """True when the caller may act on ``tenant``."""
        return self.tenant == ANY_TENANT or tenant == self.tenant

    def has_scope(self, scope: Scope) -> bool:
        """True when the caller holds ``scope`` (no scope implies another, admin included)."""
        return scope in self.scopes

    def denial_reason(self, tenant: str | None, scope: Scope) -> str | None:
        """Why a call on ``tenant`` needing ``scope`` is forbidden, or None when allowed."""
        if not self.has_scope(scope):
            return f"missing_scope:{scope.value}"
        if tenant is not None and not self.may_access(tenant):
            return "wrong_tenant"
        return None


# --- validation shared by issuing, verifying, API keys and the CLI ---------------------------


def is_valid_tenant(tenant: str, *, allow_any: bool = True) -> bool:
    """True when ``tenant`` is a tenant id, or ``*`` when ``allow_any``."""
    if allow_any and tenant == ANY_TENANT:
        return True
    return TENANT_RE.fullmatch(tenant) is not None


def is_valid_subject(subject: str) -> bool:
    """True when ``subject`` is acceptable as a credential subject."""
    return SUBJECT_RE.fullmatch(subject) is not None


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[Scope]:
    """Parse ``"a,b"`` or an iterable of names into scopes; ValueError on unknown or none."""
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    result: set[Scope] = set()
    for raw in names:
        name = raw.strip()
        try:
            result.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {name!r}; known scopes: {known}") from None
    if not result:
        raise ValueError("at least one scope is required")
    return frozenset(result)


def _check_identity(subject: str, tenant: str) -> None:
    if not is_valid_subject(subject):
        raise ValueError(SUBJECT_RULE)
    if not is_valid_tenant(tenant):
        raise ValueError(TENANT_RULE)


# --- keys -----------------------------------------------------------------------------------


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """Key id derived from the public key: first 16 hex digits of sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing key must be an Ed25519 private key")
    return key


def _load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("verification key must be an Ed25519 public key")
    return key


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 signing key, its public half and its key id."""

    key_id: str
    private_key_pem: bytes = field(repr=False)
    public_key_pem: bytes

    @classmethod
    def from_private_pem(cls, private_key_pem: bytes) -> KeyPair:
        """Build a key pair from an unencrypted PKCS#8 PEM private key."""
        public = _load_private_key(private_key_pem).public_key()
        return cls(key_id_for(public), private_key_pem, _public_pem(public))

    @classmethod
    def generate(cls) -> KeyPair:
        """Create a fresh random key pair."""
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls.from_private_pem(pem)

    def issuer(self) -> TokenIssuer:
        """A token issuer signing with this pair."""
        return TokenIssuer(self.private_key_pem, self.key_id)

    def verification_keys(self) -> dict[str, Ed25519PublicKey]:
        """The ``{key_id: public_key}`` mapping for a :class:`TokenVerifier`."""
        return {self.key_id: _load_public_key(self.public_key_pem)}


def _write_new_file(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` atomically only if it does not exist; False when someone else won."""
    # Write to a private temp file then hard-link it into place: readers never see a partial
    # key, and two processes starting at once cannot overwrite each other's key.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_dev_keys(directory: Path) -> KeyPair:
    """Load the local development key pair from ``directory``; FileNotFoundError if absent."""
    return KeyPair.from_private_pem((directory / DEV_PRIVATE_KEY_FILE).read_bytes())


def load_or_create_dev_keys(directory: Path) -> KeyPair:
    """Load the local development key pair, creating it (private file 0600) on first run."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = directory / DEV_PRIVATE_KEY_FILE
    public_path = directory / DEV_PUBLIC_KEY_FILE
    if not private_path.exists():
        _write_new_file(private_path, KeyPair.generate().private_key_pem, 0o600)
    # Always derive the public half from the private key so a stale .pub file cannot make the
    # service trust a key nobody holds.
    pair = KeyPair.from_private_pem(private_path.read_bytes())
    if not public_path.exists() or public_path.read_bytes() != pair.public_key_pem:
        _replace_file(public_path, pair.public_key_pem, 0o644)
    return pair


def load_verification_keys(sources: Iterable[Path | str | bytes]) -> dict[str, Ed25519PublicKey]:
    """Load Ed25519 public keys from paths or PEM text into ``{key_id: key}``."""
    keys: dict[str, Ed25519PublicKey] = {}
    for source in sources:
        if isinstance(source, bytes):
            pem = source
        elif isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
            pem = source.encode()
        else:
            pem = Path(source).read_bytes()
        key = _load_public_key(pem)
        keys[key_id_for(key)] = key
    return keys


# --- JWTs -----------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenIssuer:
    """Signs caller tokens with one Ed25519 key, naming it in the ``kid`` header."""

    def __init__(
        self,
        private_key_pem: bytes,
        key_id: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if KEY_ID_RE.fullmatch(key_id) is None:
            raise ValueError("key id must match [A-Za-z0-9._-]{1,64}")
        self._key = _load_private_key(private_key_pem)
        self.key_id = key_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenIssuer(key_id={self.key_id!r})"

    def issue(self, subject: str, tenant: str, scopes: str | Iterable[str], ttl: timedelta) -> str:
        """Sign a token for ``subject`` on ``tenant`` with ``scopes`` valid for ``ttl``."""
        _check_identity(subject, tenant)
        parsed = parse_scopes(scopes)
        if ttl <= timedelta(0) or ttl > MAX_TTL:
            raise ValueError(f"ttl must be positive and at most {MAX_TTL.days} days")
        now = self._clock()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "tenant": tenant,
            "scopes": sorted(s.value for s in parsed),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})


_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss", "aud", "sub", "jti"]


class TokenVerifier:
    """Verifies caller tokens against a set of public keys chosen by ``kid`` (rotation)."""

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey | bytes]) -> None:
        if not public_keys:
            raise ValueError("at least one verification key is required")
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key_id, key in public_keys.items():
            if KEY_ID_RE.fullmatch(key_id) is None:
                raise ValueError("key id must match [A-Za-z0-9._-]{1,64}")
            if isinstance(key, bytes):
                key = _load_public_key(key)
            elif not isinstance(key, Ed25519PublicKey):
                raise ValueError("verification key must be an Ed25519 public key")
            self._keys[key_id] = key

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of the keys currently accepted."""
        return frozenset(self._keys)

    def verify(self, token: str) -> Caller:
        """Check signature, lifetime, issuer, audience and claim grammar; return the caller."""
        if not token or len(token) > MAX_CREDENTIAL_LENGTH:
            raise AuthenticationError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed") from None
        # Checked before anything else so "none" or HMAC tokens never reach a key.
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError("bad_algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthenticationError("malformed")
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("unknown_key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("not_yet_valid") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("bad_signature") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("bad_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("bad_issuer") from None
        except jwt.InvalidAlgorithmError:
            raise AuthenticationError("bad_algorithm") from None
        except jwt.PyJWTError:
            raise AuthenticationError("malformed") from None
        return _caller_from_claims(claims)


def _caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    subject = claims.get("sub")
    tenant = claims.get("tenant")
    scopes = claims.get("scopes")
    jti = claims.get("jti")
    if not isinstance(subject, str) or not is_valid_subject(subject):
        raise AuthenticationError("malformed")
    if not isinstance(tenant, str) or not is_valid_tenant(tenant):
        raise AuthenticationError("malformed")
    if not isinstance(jti, str) or JTI_RE.fullmatch(jti) is None:
        raise AuthenticationError("malformed")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise AuthenticationError("malformed")
    try:
        parsed = parse_scopes(scopes)
    except ValueError:
        raise AuthenticationError("unknown_scope") from None
    expires = claims.get("exp")
    expires_at = float(expires) if isinstance(expires, int | float) else float("inf")
    return Caller(
        subject=subject, tenant=tenant, scopes=parsed, token_id=jti, expires_at=expires_at
    )


# --- static API keys ------------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    """Hex sha256 of an API key, the only form in which keys are stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key(subject: str, tenant: str, scopes: str | Iterable[str]) -> tuple[str, str]:
    """Create an API key; return (plaintext to show once, line to store in the key file)."""
    _check_identity(subject, tenant)
    parsed = parse_scopes(scopes)
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    scope_list = ",".join(sorted(s.value for s in parsed))
    return key, f"{hash_api_key(key)} {subject} {tenant} {scope_list}"


@dataclass(frozen=True)
class _ApiKeyEntry:
    digest: bytes
    caller: Caller


class ApiKeyStore:
    """Static API keys known only by their sha256, mapped to the caller they stand for."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self._entries: list[_ApiKeyEntry] = []
        seen: set[str] = set()
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 4:
                raise ValueError(
                    f"api key line {number}: expected 'sha256hex subject tenant scopes'"
                )
            digest_hex, subject, tenant, scope_text = parts
            if _SHA256_HEX_RE.fullmatch(digest_hex) is None:
                raise ValueError(f"api key line {number}: first field must be 64 lowercase hex")
            if digest_hex in seen:
                raise ValueError(f"api key line {number}: duplicate key hash")
            try:
                _check_identity(subject, tenant)
                scopes = parse_scopes(scope_text)
            except ValueError as exc:
                raise ValueError(f"api key line {number}: {exc}") from None
            seen.add(digest_hex)
            # The token id names the key without revealing it: a hash prefix is safe to log.
            caller = Caller(subject, tenant, scopes, token_id=f"psk:{digest_hex[:12]}")
            self._entries.append(_ApiKeyEntry(bytes.fromhex(digest_hex), caller))

    @classmethod
    def from_file(cls, path: Path) -> ApiKeyStore:
        """Load a key file of lines ``sha256hex subject tenant scope,scope``."""
        return cls(path.read_text(encoding="utf-8").splitlines())

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, presented: str) -> Caller:
        """Return the caller for an API key, or raise AuthenticationError."""
        if len(presented) > MAX_CREDENTIAL_LENGTH or API_KEY_RE.fullmatch(presented) is None:
            raise AuthenticationError("malformed")
        digest = hashlib.sha256(presented.encode()).digest()
        found: Caller | None = None
        # Compare against every entry without stopping early, so timing does not reveal
        # how many keys there are or which one came close.
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry.caller
        if found is None:
            raise AuthenticationError("unknown_api_key")
        return found


def append_api_key_line(path: Path, line: str) -> None:
    """Append a stored-key line to ``path``, creating it with mode 0600."""
    if "\n" in line or "\r" in line:
        raise ValueError("api key line must be a single line")
    ApiKeyStore([line])  # refuse to write a line the service could not load later
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        # Keep one entry per line even if the file was hand-edited without a final newline.
        needs_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (("\n" if needs_newline else "") + line + "\n").encode())
    finally:
        os.close(fd)


# --- header handling ------------------------------------------------------------------------


class Authenticator:
    """Turns an ``Authorization`` header into a Caller using JWTs and optional API keys."""

    def __init__(self, verifier: TokenVerifier, api_keys: ApiKeyStore | None = None) -> None:
        self.verifier = verifier
        self.api_keys = api_keys
        # Signature checks cost ~0.2-0.5 ms; a verified token is trusted again for at most a
        # minute and never past its own expiry. Bounded, so memory does not grow with callers.
        self._verified: TTLCache[str, Caller] = TTLCache(maxsize=10_000, ttl=60)

    def authenticate(self, authorization_header: str | None) -> Caller:
        """Authenticate a ``Bearer`` header; raise AuthenticationError with a safe reason."""
        if authorization_header is None or not authorization_header.strip():
            raise AuthenticationError("missing")
        if len(authorization_header) > MAX_CREDENTIAL_LENGTH + 16:
            raise AuthenticationError("malformed")
        parts = authorization_header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise AuthenticationError("bad_scheme")
        credential = parts[1]
        if _CREDENTIAL_RE.fullmatch(credential) is None:
            raise AuthenticationError("malformed")
        if credential.startswith(API_KEY_PREFIX):
            if self.api_keys is None:
                raise AuthenticationError("api_keys_disabled")
            return self.api_keys.verify(credential)
        cached = self._verified.get(credential)
        if cached is not None and cached.expires_at > time.time():
            return cached
        caller = self.verifier.verify(credential)
        self._verified[credential] = caller
        return caller
