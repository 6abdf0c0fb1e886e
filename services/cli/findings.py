"""`permstore findings unused`: list unused access, and apply the recommended events."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from permstore.services.cli.render import stdout_console
from permstore.services.cli.support import (
    CliConfig,
    api_call,
    collect,
    emit_json,
    note,
    resolve_actor,
)

findings_app = typer.Typer(help="Unused access and its remediation.", no_args_is_help=True)
MAX_REASON = 1024
PUBLISH_CHUNK = 500


def register(app: typer.Typer) -> None:
    """Add the `findings` commands to the CLI."""
    app.add_typer(findings_app, name="findings")


def subject(finding: dict[str, Any]) -> str:
    """What a finding is about, in one line."""
    if finding["kind"] == "grant":
        g = finding["grant"]
        return f"{g['principal']} {g['permission']} on {g['resource']}"
    if finding["kind"] == "membership":
        m = finding["membership"]
        return f"{m['member']} in {m['group']}"
    r = finding["role_action"]
    return f"role {r['role']} action {r['action']}"


def planned_events(findings: list[dict[str, Any]], actor: str, days: int) -> list[dict[str, Any]]:
    """The recommended events, one per distinct event, with an id that names the findings.

    The id is a digest of the event and of the events that created what it removes, so a
    retried apply is ignored as a duplicate while a later, new grant gets a new id.
    """
    by_event: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        text = json.dumps(finding["recommendation"]["event"], sort_keys=True)
        by_event.setdefault(text, []).append(finding)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    window = f"unused for {days} days" if days else "never used"
    planned = []
    for text, group in by_event.items():
        event = json.loads(text)
        names = ", ".join(f["id"] for f in group)
        origin = "|".join(sorted(f"{f['id']}@{f.get('granted_by_event', '')}" for f in group))
        digest = hashlib.sha256(f"{text}\n{origin}".encode()).hexdigest()[:32]
        reason = f"permstore findings ({window}): {names}"
        event.update(
            event_id=f"finding-{digest}",
            actor=actor,
            occurred_at=now,
            reason=reason[:MAX_REASON],
        )
        planned.append(event)
    return planned


@findings_app.command("unused")
def unused(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=0, max=3650, help="Window in days.")] = 90,
    kind: Annotated[
        str | None, typer.Option("--kind", help="grant, membership or role_action.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Plain JSON on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Publish the recommended events.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the events --apply would publish.")
    ] = False,
    actor: Annotated[
        str | None,
        typer.Option("--actor", envvar="PERMSTORE_ACTOR", help="Actor of applied events."),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id.")] = None,
) -> None:
    """Grants, memberships and role actions not used in --days days (0: never used)."""
    with api_call(ctx, tenant=tenant, as_json=as_json) as call:
        cfg, client = call.cfg, call.client
        listing = collect(
            lambda cursor, size: client.unused_page(
                days, kind=kind, tenant=call.tenant, cursor=cursor, limit=size
            ),
            limit=None,
            cursor=None,
        )
        found = listing.items
        if not (apply or dry_run):
            show(cfg, found, as_csv)
            return
        events = planned_events(found, resolve_actor(cfg, actor), days)
        if dry_run or not events:
            emit_json(events)
            note(f"{len(events)} events would be published for {len(found)} findings")
            return
        show(cfg, found, as_csv)
        if not yes and not typer.confirm(
            f"Publish {len(events)} events for {len(found)} findings?", err=True
        ):
            note("nothing published")
            raise typer.Exit(1)
        token = ""
        for start in range(0, len(events), PUBLISH_CHUNK):
            token = client.publish(events[start : start + PUBLISH_CHUNK]).token
        note(f"published {len(events)} events for {len(found)} findings")
        typer.echo(token)


def show(cfg: CliConfig, found: list[dict[str, Any]], as_csv: bool) -> None:
    """Findings as JSON, CSV or a table."""
    if cfg.as_json:
        emit_json(found)
        return
    columns = ("kind", "what", "granted_at", "granted_by", "last_used_at", "uses", "recommend")
    rows = [
        (
            f["kind"],
            subject(f),
            f["granted_at"],
            f["granted_by"],
            f["last_used_at"] or "never",
            str(f["uses"]),
            f["recommendation"]["event"]["type"],
        )
        for f in found
    ]
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    table = Table(*columns, title=f"{len(found)} unused")
    for row in rows:
        table.add_row(*row)
    stdout_console().print(table)
