"""`permstore changes list|follow`: the stream of effective-permission changes (contract 6)."""

from __future__ import annotations

import json

import typer
from permstore_client import RetryPolicy

from permstore.services.cli import render
from permstore.services.cli.options import (
    AfterOpt,
    ChangesLimitOpt,
    JsonOpt,
    TenantOpt,
    TokenOpt,
    UrlOpt,
)
from permstore.services.cli.support import (
    CliConfig,
    emit_json,
    guard,
    note,
    open_client,
    plain,
    require_tenant,
    root_config,
)

changes_app = typer.Typer(
    help="Follow what principals may do: the changes of their effective permissions.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `changes` commands to the CLI."""
    app.add_typer(changes_app, name="changes")


def _config(
    ctx: typer.Context, url: str | None, token: str | None, tenant: str | None, as_json: bool
) -> CliConfig:
    return root_config(ctx).merged(url=url, token=token, tenant=tenant, as_json=as_json)


@changes_app.command("list")
def list_changes(
    ctx: typer.Context,
    after: AfterOpt = None,
    limit: ChangesLimitOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One page of changes after --after, oldest first, and the token to continue from.

    With --json: {"changes": [...], "next": token}; otherwise a line per change, and the
    next token on stderr.
    """
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:
            page = client.changes(tenant_id, after=after, limit=limit)
        changes = [plain(change) for change in page.changes]
        if cfg.as_json:
            emit_json({"changes": changes, "next": page.next})
            return
        for change in changes:
            typer.echo(render.change_line(change))
        count = f"{len(changes)} change{'' if len(changes) == 1 else 's'}"
        note(f"{count}; continue: --after {page.next}")


@changes_app.command("follow")
def follow(
    ctx: typer.Context,
    after: AfterOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print each change as it happens, after --after, until Ctrl-C.

    With --json, one JSON object per line. Outages and lost connections are outlived: the
    command reconnects from the last change it printed, so none is printed twice or missed.
    """
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        # A record's position names its whole event: resuming from the event in progress
        # would skip its remaining principals, so resume from the last event seen to its end.
        completed, current = after, None
        # A follower is meant to outlive outages, so it keeps the kit's retries.
        with open_client(cfg, retry=RetryPolicy()) as client:
            try:
                for change in client.follow_changes(tenant_id, after=after):
                    if current is not None and change.position != current:
                        completed = current
                    current = change.position
                    body = plain(change)
                    if cfg.as_json:
                        typer.echo(json.dumps(body, ensure_ascii=False))
                    else:
                        typer.echo(render.change_line(body))
            except KeyboardInterrupt:
                if completed is None:
                    note("stopped")
                else:
                    note(
                        f"stopped; resume with --after {completed} (the changes of the event "
                        "in progress, if any, print again)"
                    )
