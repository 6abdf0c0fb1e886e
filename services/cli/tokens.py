"""``permstore token ...``: issue caller tokens and create static API keys."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from pydantic import ValidationError

from permstore.services.auth import (
    MAX_TTL,
    SUBJECT_RULE,
    TENANT_RULE,
    append_api_key_line,
    generate_api_key,
    is_valid_subject,
    is_valid_tenant,
    parse_scopes,
)
from permstore.services.auth_settings import AuthConfigurationError, AuthSettings, build_issuer

_TTL_RE: Final = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_TTL_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

token_app = typer.Typer(
    name="token",
    help="Issue caller tokens and API keys accepted by the locally configured service.",
    no_args_is_help=True,
)
api_key_app = typer.Typer(help="Manage static API keys (stored hashed).", no_args_is_help=True)
token_app.add_typer(api_key_app, name="api-key")


def register(app: typer.Typer) -> None:
    """Add the token commands to the main CLI."""
    app.add_typer(token_app, name="token", help="Issue tokens and API keys for callers.")


def parse_ttl(text: str) -> timedelta:
    """Parse a lifetime like ``30s``, ``15m``, ``1h`` or ``7d``; ValueError otherwise."""
    match = _TTL_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid ttl {text!r}: use a positive number followed by s, m, h or d")
    ttl = timedelta(**{_TTL_UNITS[match.group(2)]: int(match.group(1))})
    if ttl > MAX_TTL:
        raise ValueError(f"ttl {text!r} is longer than the maximum of {MAX_TTL.days}d")
    return ttl


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _settings() -> AuthSettings:
    try:
        return AuthSettings()
    except ValidationError as exc:
        details = "; ".join(str(err["msg"]) for err in exc.errors())
        _fail(f"invalid auth settings: {details}")


def _check_request(subject: str, tenant: str, scopes: str) -> None:
    if not is_valid_subject(subject):
        _fail(f"invalid --subject: {SUBJECT_RULE}")
    if not is_valid_tenant(tenant):
        _fail(f"invalid --tenant: {TENANT_RULE}")
    try:
        parse_scopes(scopes)
    except ValueError as exc:
        _fail(f"invalid --scopes: {exc}")


@token_app.command("issue")
def issue(
    subject: Annotated[str, typer.Option("--subject", help="Who the token names.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id, or '*' for operators.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: check, write, audit, admin.")
    ],
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: 30s, 15m, 1h, 7d.")] = "1h",
) -> None:
    """Print a signed token (and nothing else) on stdout."""
    _check_request(subject, tenant, scopes)
    try:
        lifetime = parse_ttl(ttl)
    except ValueError as exc:
        _fail(f"invalid --ttl: {exc}")
    settings = _settings()
    try:
        issuer = build_issuer(settings)
    except (AuthConfigurationError, OSError, ValueError) as exc:
        _fail(f"cannot load signing key: {exc}", code=1)
    typer.echo(issuer.issue(subject, tenant, parse_scopes(scopes), lifetime))


@api_key_app.command("create")
def create_api_key(
    subject: Annotated[str, typer.Option("--subject", help="Who the key names.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id, or '*' for operators.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: check, write, audit, admin.")
    ],
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Key file; default PERMSTORE_AUTH_API_KEYS_FILE."),
    ] = None,
) -> None:
    """Create an API key: print it once on stdout and store only its hash."""
    _check_request(subject, tenant, scopes)
    target = file if file is not None else _settings().api_keys_file
    if target is None:
        _fail("no key file: pass --file or set PERMSTORE_AUTH_API_KEYS_FILE")
    key, line = generate_api_key(subject, tenant, scopes)
    try:
        append_api_key_line(target, line)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror}", code=1)
    typer.echo(key)
    typer.echo(
        f"stored the key's hash in {target}; the key is shown only this once "
        "(restart the service to load it)",
        err=True,
    )
