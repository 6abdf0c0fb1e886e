"""`permstore changes list|follow`: the stream of effective-permission changes (contract 6)."""

from __future__ import annotations

import json

import typer
from permstore_client import RetryPolicy

from permstore.services.cli import render
from permstore.services.cli.options import (
    AfterOpt,
    ChangesLimitOpt,
)
from permstore.services.cli.support import (
    ApiCall,
    api_command,
    emit_json,
    note,
    plain,
)

changes_app = typer.Typer(
    help="Follow what principals may do: the changes of their effective permissions.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `changes` commands to the CLI."""
    app.add_typer(changes_app, name="changes")


@api_command(changes_app, "list")
def list_changes(
    call: ApiCall,
    after: AfterOpt = None,
    limit: ChangesLimitOpt = None,
) -> None:
    """One page of changes after --after, oldest first, and the token to continue from.

    With --json: {"changes": [...], "next": token}; otherwise a line per change, and the
    next token on stderr.
    """
    page = call.client.changes(call.tenant, after=after, limit=limit)
    changes = [plain(change) for change in page.changes]
    if call.cfg.as_json:
        emit_json({"changes": changes, "next": page.next})
        return
    for change in changes:
        typer.echo(render.change_line(change))
    count = f"{len(changes)} change{'' if len(changes) == 1 else 's'}"
    note(f"{count}; continue: --after {page.next}")


@api_command(changes_app, "follow", retry=RetryPolicy())
def follow(
    call: ApiCall,
    after: AfterOpt = None,
) -> None:
    """Print each change as it happens, after --after, until Ctrl-C.

    With --json, one JSON object per line. Outages and lost connections are outlived: the
    command reconnects from the last change it printed, so none is printed twice or missed.
    """
    # A follower is meant to outlive outages, so it keeps the kit's retries.
    # A record's position names its whole event: resuming from the event in progress
    # would skip its remaining principals, so resume from the last event seen to its end.
    completed, current = after, None
    try:
        for change in call.client.follow_changes(call.tenant, after=after):
            if current is not None and change.position != current:
                completed = current
            current = change.position
            body = plain(change)
            if call.cfg.as_json:
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
