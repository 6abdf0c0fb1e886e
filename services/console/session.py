"""Console sessions: an encrypted, authenticated cookie holding the signed-in credential.

The browser only ever sees ciphertext (Fernet: AES-CBC + HMAC), so script, extensions reading
cookies, or anyone copying the cookie jar never learns the permstore token itself; the cookie
is HttpOnly and SameSite=Strict besides, and Secure when served over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

COOKIE = "permstore_console"
PRE_COOKIE = "permstore_console_pre"
SECRET_FILE = "console_session.key"  # noqa: S105 - a file name, not a secret


class ConsoleSettings(BaseSettings):
    """Console options (environment prefix PERMSTORE_CONSOLE_)."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_CONSOLE_", extra="ignore")

    enabled: bool = True
    # The key that encrypts session cookies; every API worker must share it. Without it (and
    # outside production) a random key is created once in <local_dir>/secrets.
    session_secret: SecretStr | None = None
    session_secret_file: Path | None = None
    # Trusted identity proxy (e.g. oauth2-proxy): off unless a header is named. Only enable it
    # when the API can be reached through the proxy alone.
    proxy_header: str | None = None
    proxy_tenant: str | None = None
    proxy_scopes: str = "check"
    proxy_trusted_ips: Annotated[list[str], NoDecode] = ["127.0.0.1", "::1"]
    # The deployment's name (PERMSTORE_ENV, as for auth): "production" requires a session key.
    deployment: str = Field(default="", validation_alias="PERMSTORE_ENV")

    @field_validator("proxy_trusted_ips", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def load_secret(settings: ConsoleSettings, secrets_dir: Path) -> bytes:
    """The session key: from settings, a file, or (outside production) a generated local file."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    if settings.session_secret_file is not None:
        return settings.session_secret_file.read_bytes().strip()
    if settings.deployment.strip().lower() == "production":
        raise RuntimeError("PERMSTORE_CONSOLE_SESSION_SECRET(_FILE) is required in production")
    path = secrets_dir / SECRET_FILE
    if not path.exists():
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_urlsafe(48).encode())
        try:
            os.link(tmp, path)  # two workers starting at once agree on the first key written
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


@dataclass(frozen=True)
class SessionData:
    """What a signed-in browser carries: how it signed in, the tenant it works on, CSRF."""

    mode: str  # "token" or "proxy"
    tenant: str
    csrf: str
    token: str = ""
    subject: str = ""


class SessionCodec:
    """Encrypts and decrypts session cookies with a key derived from the console secret."""

    def __init__(self, secret: bytes) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(b"permstore-console\0" + secret).digest())
        self._fernet = Fernet(key)

    def encode(self, data: SessionData) -> str:
        """The cookie value of a session."""
        payload: dict[str, Any] = {
            "m": data.mode,
            "t": data.tenant,
            "c": data.csrf,
            "k": data.token,
            "s": data.subject,
        }
        return self._fernet.encrypt(orjson.dumps(payload)).decode()

    def decode(self, value: str | None, max_age: int | None = None) -> SessionData | None:
        """The session of a cookie, or None when absent, forged or unreadable."""
        if not value or len(value) > 12_000:
            return None
        try:
            raw = self._fernet.decrypt(value.encode(), ttl=max_age)
            payload = orjson.loads(raw)
            return SessionData(
                mode=str(payload["m"]),
                tenant=str(payload["t"]),
                csrf=str(payload["c"]),
                token=str(payload["k"]),
                subject=str(payload["s"]),
            )
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None


def new_csrf() -> str:
    """A fresh CSRF token."""
    return secrets.token_urlsafe(24)
