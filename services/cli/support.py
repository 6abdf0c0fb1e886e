"""Plumbing of the ``permstore`` CLI: settings, exit codes, error mapping and plain output.

Results go to stdout (a table for people, JSON with ``--json``); errors and notes go to
stderr. The token is never printed, not even inside an error message.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, NoReturn, TextIO

import click
import httpx
import jwt
import structlog
import typer
from permstore_client import (
    NO_RETRIES,
    Page,
    PermstoreClient,
    PermstoreError,
    RetryPolicy,
    TransportError,
    TransportTimeoutError,
)
from pydantic import BaseModel, ValidationError

from permstore.adapters.settings import LoggingSettings
from permstore.core.identifiers import is_principal
from permstore.services.cli.options import JsonOpt, TenantOpt, TokenOpt, UrlOpt

DEFAULT_URL: Final = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT: Final = 30.0
MAX_PAGE: Final = 1000
REDACTED: Final = "***"


class ExitCode(IntEnum):
    """What a script can rely on after any command."""

    OK = 0
    """Success; for ``check`` and ``audit-check``: allowed."""
    DENIED = 1
    """``check`` / ``audit-check`` only: the permission is not held."""
    USAGE = 2
    """Bad usage or invalid input (the service answered 400, 404, 409, 413 or 422)."""
    AUTH = 3
    """The service refused the caller (401 or 403)."""
    UNAVAILABLE = 4
    """Service unavailable or unreachable: 503, 502, 504, 429, connection refused, timeout."""
    SERVER = 5
    """Any other server error (500, a malformed answer) or an unexpected failure."""


EXIT_CODES_HELP: Final = (
    "Exit codes: 0 success (check/audit-check: allowed); 1 denied (check/audit-check only); "
    "2 usage or invalid input (HTTP 400/404/409/413/422); 3 auth refused (401/403); "
    "4 service unavailable or unreachable (503/502/504/429, connection refused, timeout); "
    "5 other server error."
)

_UNAVAILABLE_STATUSES: Final = frozenset({429, 502, 503, 504})
_AUTH_STATUSES: Final = frozenset({401, 403})


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code of an HTTP error answer."""
    if status in _AUTH_STATUSES:
        return ExitCode.AUTH
    if status in _UNAVAILABLE_STATUSES:
        return ExitCode.UNAVAILABLE
    if 400 <= status < 500:
        return ExitCode.USAGE
    return ExitCode.SERVER


@dataclass(frozen=True)
class CliConfig:
    """Where and as whom the CLI talks, and how it prints."""

    url: str = DEFAULT_URL
    token: str | None = None
    tenant: str | None = None
    as_json: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def merged(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        tenant: str | None = None,
        as_json: bool = False,
    ) -> CliConfig:
        """This config with options given after the command name taking precedence."""
        return CliConfig(
            url=url or self.url,
            token=token or self.token,
            tenant=tenant or self.tenant,
            as_json=as_json or self.as_json,
            timeout=self.timeout,
        )

    def __repr__(self) -> str:
        token = None if self.token is None else REDACTED
        return (
            f"CliConfig(url={self.url!r}, token={token!r}, tenant={self.tenant!r}, "
            f"as_json={self.as_json!r}, timeout={self.timeout!r})"
        )


def root_config(ctx: typer.Context) -> CliConfig:
    """The config the top-level options and environment set (defaults when run bare)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliConfig) else CliConfig()


# --------------------------------------------------------------------------- output


def emit_json(value: Any) -> None:
    """Plain JSON on stdout, for scripts."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def note(message: str) -> None:
    """A line for people on stderr (never mixed with results)."""
    typer.echo(message, err=True)


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, REDACTED) if token else text


def fail(
    cfg: CliConfig,
    code: ExitCode,
    error_code: str,
    message: str,
    *,
    status: int | None = None,
    details: Any = None,
) -> NoReturn:
    """Print an error on stderr (JSON with ``--json``) and exit with code."""
    message = _redact(message, cfg.token)
    if cfg.as_json:
        body: dict[str, Any] = {"code": error_code, "message": message, "details": details}
        if status is not None:
            body["status"] = status
        typer.echo(_redact(json.dumps({"error": body}, ensure_ascii=False), cfg.token), err=True)
    else:
        prefix = f"error: {status} {error_code}" if status is not None else f"error: {error_code}"
        typer.echo(f"{prefix}: {message}", err=True)
        for line in _detail_lines(details):
            typer.echo(f"  {_redact(line, cfg.token)}", err=True)
    raise typer.Exit(code=int(code))


def _detail_lines(details: Any) -> list[str]:
    if details is None or details == [] or details == {}:
        return []
    if isinstance(details, list) and all(
        isinstance(d, dict) and "field" in d and "rule" in d for d in details
    ):
        return [f"{d['field']}: {d['rule']}" for d in details]
    if isinstance(details, dict):
        return [f"{key}: {value}" for key, value in details.items()]
    return [json.dumps(details, ensure_ascii=False)]


def usage_error(cfg: CliConfig, message: str) -> NoReturn:
    """Exit 2 with a usage message."""
    fail(cfg, ExitCode.USAGE, "usage", message)


# --------------------------------------------------------------------------- calls

_TOKEN_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=:"
)


def require_tenant(cfg: CliConfig) -> str:
    """The tenant, or exit 2 explaining how to give one."""
    if not cfg.tenant:
        usage_error(cfg, "no tenant: pass --tenant or set PERMSTORE_TENANT")
    return cfg.tenant


def require_token(cfg: CliConfig) -> str:
    """The caller token, or exit 2 explaining how to give one (the token is never shown)."""
    token = (cfg.token or "").strip()
    if not token:
        usage_error(
            cfg, "no token: set PERMSTORE_TOKEN or pass --token (see `permstore token issue`)"
        )
    if not set(token) <= _TOKEN_CHARS:
        usage_error(cfg, "the token contains characters no permstore token or API key has")
    return token


def require_url(cfg: CliConfig) -> str:
    """The base URL, or exit 2 when it is not an http(s) URL."""
    url = cfg.url.strip()
    if not url.startswith(("http://", "https://")):
        usage_error(cfg, f"invalid --url {url!r}: use http://host:port or https://host")
    return url.rstrip("/")


def open_client(cfg: CliConfig, *, retry: RetryPolicy = NO_RETRIES) -> PermstoreClient:
    """The client kit's client for this invocation (unit tests replace the HTTP transport).

    One-shot commands make one attempt: a 503 or 429 is exit 4 at once, and the script or
    person running the command decides whether to try again.
    """
    return PermstoreClient(require_url(cfg), require_token(cfg), timeout=cfg.timeout, retry=retry)


def new_event(
    cfg: CliConfig, client: PermstoreClient, kind: str, tenant: str, **fields: Any
) -> dict[str, Any]:
    """A complete event of kind, validated as the service would; invalid input exits 2."""
    try:
        return client.make_event(kind, tenant=tenant, **fields)
    except ValidationError as exc:
        details = [
            {"field": _field(error["loc"], kind), "rule": _rule(error["msg"])}
            for error in exc.errors()
        ]
        named = ", ".join(d["field"] for d in details[:5])
        fail(cfg, ExitCode.USAGE, "invalid_request", f"invalid input: {named}", details=details)


def _field(loc: tuple[int | str, ...], kind: str) -> str:
    # The union of event models puts the type's tag first; the service names the field alone.
    parts = loc[1:] if loc and loc[0] == kind else loc
    return ".".join(str(part) for part in parts) or "event"


def _rule(message: str) -> str:
    return message.removeprefix("Value error, ")


def plain(answer: BaseModel) -> dict[str, Any]:
    """An answer as the JSON the service sent: its fields, and only those it sent."""
    return answer.model_dump(mode="json", exclude_unset=True)


def token_subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT, read without verifying it (the service verifies)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


def resolve_actor(cfg: CliConfig, actor: str | None) -> str:
    """The actor recorded on an event: --actor, else the token's subject when a principal."""
    if actor:
        return actor
    subject = token_subject(require_token(cfg))
    if subject is not None and is_principal(subject):
        return subject
    usage_error(
        cfg,
        "no actor: pass --actor or set PERMSTORE_ACTOR (the token's subject is not a principal)",
    )


@contextmanager
def guard(cfg: CliConfig) -> Iterator[None]:
    """Map every failure inside to an error on stderr and its exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except TransportTimeoutError:
        fail(cfg, ExitCode.UNAVAILABLE, "timeout", f"no answer from {cfg.url} in time")
    except TransportError as exc:
        # The kit keeps httpx's failure as the cause; its text is what people recognise.
        reason = str(exc.__cause__) if exc.__cause__ is not None else exc.message
        fail(cfg, ExitCode.UNAVAILABLE, "unreachable", f"cannot reach {cfg.url}: {reason}")
    except PermstoreError as exc:
        fail(
            cfg,
            exit_code_for_status(exc.status),
            exc.code,
            exc.message,
            status=exc.status,
            details=exc.details,
        )
    except httpx.InvalidURL as exc:
        usage_error(cfg, f"invalid --url or argument: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        fail(
            cfg,
            ExitCode.SERVER,
            "bad_answer",
            f"unexpected answer from {cfg.url}: {type(exc).__name__}: {exc}",
        )
    except Exception as exc:
        fail(cfg, ExitCode.SERVER, "internal", f"unexpected failure: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class ApiCall:
    """What an API command works with: its merged options, its tenant and an open client."""

    cfg: CliConfig
    tenant: str
    client: PermstoreClient


@contextmanager
def api_call(
    ctx: typer.Context,
    *,
    url: str | None = None,
    token: str | None = None,
    tenant: str | None = None,
    as_json: bool = False,
    retry: RetryPolicy = NO_RETRIES,
) -> Iterator[ApiCall]:
    """The opening every API command shares: the options given after the command over the
    global ones, failures mapped to exit codes, a tenant required, the client open."""
    cfg = root_config(ctx).merged(url=url, token=token, tenant=tenant, as_json=as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg, retry=retry) as client:
            yield ApiCall(cfg, tenant_id, client)


# The options every API command also takes after its name, added to each by api_command.
_AFTER_COMMAND_OPTIONS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("url", UrlOpt, None),
        ("token", TokenOpt, None),
        ("tenant", TenantOpt, None),
        ("as_json", JsonOpt, False),
    )
)


def api_command(
    app: typer.Typer, name: str, *, retry: RetryPolicy = NO_RETRIES, **settings: Any
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command that talks to the API. It is called with the open ApiCall first and
    its own arguments after; the shared options are added to its signature here, once."""

    def register(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        _, *arguments = own.parameters.values()

        @functools.wraps(command)
        def run(ctx: typer.Context, **given: Any) -> None:
            shared = {p.name: given.pop(p.name) for p in _AFTER_COMMAND_OPTIONS}
            with api_call(ctx, **shared, retry=retry) as call:
                command(call, **given)

        context = inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )
        signature = own.replace(parameters=[context, *arguments, *_AFTER_COMMAND_OPTIONS])
        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        app.command(name, **settings)(run)
        return command

    return register


@dataclass(frozen=True)
class Listing:
    """Items gathered across pages, where to resume, and the last view token."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    token: str | None


def collect(
    fetch: Callable[[str | None, int], Page[Any]], *, limit: int | None, cursor: str | None
) -> Listing:
    """Follow cursors from cursor until the last page or limit items (None: every item).

    Pages are sized so that a limit always ends on a page boundary, so the returned
    cursor resumes exactly after the last item returned.
    """
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(items))
        page = fetch(cursor, size)
        items.extend(plain(item) for item in page.items)
        token = page.token or token
        cursor = page.next_cursor
        if not cursor or (limit is not None and len(items) >= limit):
            return Listing(items, cursor, token)


# --------------------------------------------------------------------------- logging


class _CurrentStderr:
    """A file that writes to whatever sys.stderr is at the time of writing."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_cli_logging() -> None:
    """Keep stdout for results: structlog and stdlib logging write to stderr only."""
    level = (LoggingSettings().log_level or "WARNING").upper()
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    stream: TextIO = _CurrentStderr()  # type: ignore[assignment]
    logging.basicConfig(stream=stream, level=numeric, format="%(levelname)s %(name)s %(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
