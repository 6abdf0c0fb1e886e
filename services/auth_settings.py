"""Configuration of caller authentication (environment prefix ``PERMSTORE_AUTH_``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from permstore.adapters.settings import LOCAL_DIR
from permstore.services.auth import (
    DEV_PUBLIC_KEY_FILE,
    ApiKeyStore,
    Authenticator,
    KeyPair,
    TokenIssuer,
    TokenVerifier,
    load_dev_keys,
    load_or_create_dev_keys,
    load_verification_keys,
)

log = structlog.get_logger(__name__)


class AuthConfigurationError(RuntimeError):
    """Authentication cannot be set up from the given settings."""


class AuthSettings(BaseSettings):
    """Where signing keys, verification keys and API keys come from."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_AUTH_", extra="ignore")

    keys_dir: Path = LOCAL_DIR / "keys"
    # NoDecode: accept the friendlier "a.pem,b.pem" in the environment as well as a JSON list.
    public_key_files: Annotated[list[Path], NoDecode] = []
    private_key_file: Path | None = None
    api_keys_file: Path | None = None
    dev_mode: bool = True
    # The deployment's name (PERMSTORE_ENV); "production" refuses dev mode.
    deployment: str = Field(default="", validation_alias="PERMSTORE_ENV")

    @field_validator("public_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _no_dev_mode_in_production(self) -> AuthSettings:
        # Dev mode mints keys on the fly; a production service must only trust provisioned keys.
        if self.dev_mode and self.deployment.strip().lower() == "production":
            raise ValueError("PERMSTORE_AUTH_DEV_MODE must be false when PERMSTORE_ENV=production")
        return self


def _dev_key_pair(settings: AuthSettings) -> KeyPair:
    # No logging here: the token CLI goes through this path and must print only the token on
    # stdout, where unconfigured structlog would write.
    if settings.dev_mode:
        return load_or_create_dev_keys(settings.keys_dir)
    try:
        return load_dev_keys(settings.keys_dir)
    except FileNotFoundError:
        raise AuthConfigurationError(
            f"no signing key: set PERMSTORE_AUTH_PRIVATE_KEY_FILE or enable dev mode "
            f"(looked in {settings.keys_dir})"
        ) from None


def build_issuer(settings: AuthSettings) -> TokenIssuer:
    """Token issuer from ``private_key_file``, else the development key in ``keys_dir``."""
    if settings.private_key_file is not None:
        return KeyPair.from_private_pem(settings.private_key_file.read_bytes()).issuer()
    return _dev_key_pair(settings).issuer()


def build_verifier(settings: AuthSettings) -> TokenVerifier:
    """Verifier trusting ``public_key_files``, else the issuing key, else the dev key."""
    if settings.public_key_files:
        keys = load_verification_keys(settings.public_key_files)
    elif settings.private_key_file is not None:
        # Without explicit public keys, trust exactly what this deployment would sign with.
        keys = KeyPair.from_private_pem(settings.private_key_file.read_bytes()).verification_keys()
    elif settings.dev_mode:
        keys = _dev_key_pair(settings).verification_keys()
    else:
        public_path = settings.keys_dir / DEV_PUBLIC_KEY_FILE
        if not public_path.exists():
            raise AuthConfigurationError(
                "no verification key: set PERMSTORE_AUTH_PUBLIC_KEY_FILES or enable dev mode "
                f"(looked for {public_path})"
            )
        keys = load_verification_keys([public_path])
    log.info("auth.verification_keys", key_ids=sorted(keys), dev_mode=settings.dev_mode)
    return TokenVerifier(keys)


def build_api_key_store(settings: AuthSettings) -> ApiKeyStore | None:
    """API key store from ``api_keys_file``, or None when API keys are not configured."""
    if settings.api_keys_file is None:
        return None
    if not settings.api_keys_file.exists():
        # A configured but missing file is a deployment mistake; failing loudly beats
        # silently refusing every key.
        raise AuthConfigurationError(f"api keys file not found: {settings.api_keys_file}")
    store = ApiKeyStore.from_file(settings.api_keys_file)
    log.info("auth.api_keys", count=len(store))
    return store


def build_authenticator(settings: AuthSettings) -> Authenticator:
    """Authenticator for the service, from settings."""
    return Authenticator(build_verifier(settings), build_api_key_store(settings))
