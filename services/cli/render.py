"""Tables and lines for people (rich), one renderer per kind of result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def stdout_console() -> Console:
    """A console on the current stdout (colour only on a terminal)."""
    return Console(highlight=False, soft_wrap=False)


def _reasons_text(reasons: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for reason in reasons:
        description = reason.get("description")
        if not description:
            grant = reason.get("grant") or {}
            description = (
                f"{grant.get('principal', '?')} holds {grant.get('permission', '?')} "
                f"on {grant.get('resource', '?')}"
            )
        expires = reason.get("expires_at")
        lines.append(f"{description} (until {expires})" if expires else str(description))
    return "\n".join(lines)


def decision(
    console: Console,
    *,
    allowed: bool,
    principal: str,
    resource: str,
    action: str,
    reasons: Sequence[Mapping[str, Any]],
    token: str | None = None,
    at: str | None = None,
) -> None:
    """ALLOWED / DENIED, why, and the view token."""
    verdict = Text("ALLOWED", style="bold green") if allowed else Text("DENIED", style="bold red")
    line = Text.assemble(verdict, "  ", f"{principal} {action} {resource}")
    if at:
        line.append(f"  at {at}")
    console.print(line)
    if reasons:
        table = Table("kind", "grant", "via groups", "via role")
        table.add_column("expires", no_wrap=True)
        for reason in reasons:
            grant = reason.get("grant") or {}
            table.add_row(
                escape(str(reason.get("kind", ""))),
                escape(
                    f"{grant.get('principal', '')} {grant.get('permission', '')} "
                    f"{grant.get('resource', '')}"
                ),
                escape(" > ".join(reason.get("via_chain") or [reason.get("via_group") or ""])),
                escape(str(reason.get("via_role") or "")),
                escape(str(reason.get("expires_at") or "never")),
            )
        console.print(table)
    if token:
        console.print(Text(f"token: {token}", style="dim"))


def permissions(console: Console, items: Sequence[Mapping[str, Any]]) -> None:
    """A principal's effective permissions."""
    table = Table("resource", "action")
    table.add_column("expires", no_wrap=True)
    table.add_column("why")
    for item in items:
        table.add_row(
            escape(str(item.get("resource", ""))),
            escape(str(item.get("action", ""))),
            escape(str(item.get("expires_at") or "never")),
            escape(_reasons_text(item.get("reasons") or [])),
        )
    console.print(table)


def principals(console: Console, items: Sequence[Mapping[str, Any]]) -> None:
    """Who may act on a resource."""
    table = Table("principal", "action", "why")
    for item in items:
        table.add_row(
            escape(str(item.get("principal", ""))),
            escape(str(item.get("action", ""))),
            escape(_reasons_text(item.get("reasons") or [])),
        )
    console.print(table)


def event_summary(event: Mapping[str, Any]) -> str:
    """One line naming what an event changes."""
    kind = event.get("type")
    if kind in ("grant", "revoke"):
        text = f"{event.get('principal')} {event.get('permission')} on {event.get('resource')}"
        if event.get("expires_at"):
            text += f" until {event['expires_at']}"
        return text
    if kind in ("add_member", "remove_member"):
        return f"{event.get('member')} in {event.get('group')}"
    if kind == "define_role":
        actions = event.get("actions") or []
        return f"{event.get('role')} = {', '.join(str(a) for a in actions)}"
    if kind == "delete_role":
        return str(event.get("role"))
    return ""


def history(console: Console, items: Sequence[Mapping[str, Any]]) -> None:
    """The audit timeline, oldest first."""
    table = Table()
    table.add_column("recorded at", no_wrap=True)
    table.add_column("position", no_wrap=True, justify="right")
    for name in ("type", "actor", "change", "reason"):
        table.add_column(name)
    for item in items:
        event = item.get("event") or {}
        table.add_row(
            escape(str(item.get("recorded_at", ""))),
            escape(str(item.get("position", ""))),
            escape(str(event.get("type", ""))),
            escape(str(event.get("actor", ""))),
            escape(event_summary(event)),
            escape(str(event.get("reason") or "")),
        )
    console.print(table)


def change_line(change: Mapping[str, Any]) -> str:
    """One line naming what a change gave and took from a principal, and the event that did."""
    parts = []
    for item in change.get("added") or []:
        until = f" until {item['expires_at']}" if item.get("expires_at") else ""
        parts.append(f"+{item.get('action')} on {item.get('resource')}{until}")
    parts += [
        f"-{item.get('action')} on {item.get('resource')}" for item in change.get("removed") or []
    ]
    what = ", ".join(parts) or "no change"
    when, who, cause = change.get("recorded_at"), change.get("principal"), change.get("cause")
    return f"{when}  {who}  {what}  (cause {cause})"
