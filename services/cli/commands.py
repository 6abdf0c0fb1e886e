"""The `permstore` command line: write events, ask questions, audit, issue tokens.

Every command talks to a running API through the client kit (permstore_client). Results go to
stdout (tables for people, plain JSON with --json); errors go to stderr with the service's
error code and message; the exit code tells scripts what happened (see ExitCode).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from permstore_client import AuditDecision, Decision, Page

from permstore.services.cli import changes, dev, findings, render, tokens
from permstore.services.cli import ops as ops_cli
from permstore.services.cli.options import (
    EVENT,
    ActionArg,
    ActorOpt,
    CursorOpt,
    GroupArg,
    MemberArg,
    PatternArg,
    PermissionArg,
    PrincipalArg,
    ReasonOpt,
    ResourceArg,
    RootJsonOpt,
    RootTenantOpt,
    RootTimeoutOpt,
    RootTokenOpt,
    RootUrlOpt,
)
from permstore.services.cli.support import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    EXIT_CODES_HELP,
    ApiCall,
    CliConfig,
    ExitCode,
    Listing,
    api_command,
    collect,
    configure_cli_logging,
    emit_json,
    new_event,
    note,
    plain,
    resolve_actor,
    usage_error,
)

HELP = f"""permstore: event-sourced authorization service.

Global options may be given before the command or after it. The token is read from
--token or PERMSTORE_TOKEN and is never printed. Quote wildcard patterns such as
'doc:acme/eng/*' so that the shell does not expand them.

{EXIT_CODES_HELP}"""


class _PermstoreApp(typer.Typer):
    """The console script: logging goes to stderr before any command runs."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        configure_cli_logging()
        return super().__call__(*args, **kwargs)


app = _PermstoreApp(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Every command group registers itself the same way.
for group in (tokens, ops_cli, findings, changes, dev):
    group.register(app)


@app.callback()
def main(
    ctx: typer.Context,
    url: RootUrlOpt = DEFAULT_URL,
    token: RootTokenOpt = None,
    tenant: RootTenantOpt = None,
    as_json: RootJsonOpt = False,
    timeout: RootTimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """permstore: event-sourced authorization service."""
    ctx.obj = CliConfig(url=url, token=token, tenant=tenant, as_json=as_json, timeout=timeout)


def _publish(
    call: ApiCall, kind: str, summary: str, fields: dict[str, Any], hidden: tuple[str, ...]
) -> None:
    """Publish one event of kind; print its consistency token alone on stdout (with --json, the
    token and the fields not hidden), and what was done on stderr."""
    event = new_event(call.cfg, call.client, kind, call.tenant, **fields)
    written = call.client.publish([event]).token
    if call.cfg.as_json:
        shown = {k: v for k, v in fields.items() if k not in hidden and v is not None}
        emit_json({"token": written, "type": kind, "tenant": call.tenant, **shown})
    else:
        typer.echo(written)
        note(f"{summary} (tenant {call.tenant})")


# --------------------------------------------------------------------------- writes


@api_command(app, "grant")
def grant(
    call: ApiCall,
    principal: PrincipalArg,
    resource: PatternArg,
    permission: PermissionArg,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="RFC 3339 time when the grant lapses; default: never.",
            show_default=False,
            rich_help_panel=EVENT,
        ),
    ] = None,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Grant PERMISSION on RESOURCE to PRINCIPAL; print the consistency token.

    Pass the token to `check --at-least` to read your own write.
    """
    who = resolve_actor(call.cfg, actor)
    until = f" until {expires_at}" if expires_at else ""
    _publish(
        call,
        "grant",
        f"granted {permission} on {resource} to {principal}{until}",
        {
            "principal": principal,
            "resource": resource,
            "permission": permission,
            "expires_at": expires_at,
            "actor": who,
            "reason": reason,
        },
        hidden=("reason",),
    )


@api_command(app, "revoke")
def revoke(
    call: ApiCall,
    principal: PrincipalArg,
    resource: PatternArg,
    permission: PermissionArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Revoke the grant (PRINCIPAL, RESOURCE, PERMISSION); print the consistency token."""
    who = resolve_actor(call.cfg, actor)
    _publish(
        call,
        "revoke",
        f"revoked {permission} on {resource} from {principal}",
        {
            "principal": principal,
            "resource": resource,
            "permission": permission,
            "actor": who,
            "reason": reason,
        },
        hidden=("reason",),
    )


@api_command(app, "add-member")
def add_member(
    call: ApiCall,
    group: GroupArg,
    member: MemberArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Make MEMBER a member of GROUP; print the consistency token."""
    who = resolve_actor(call.cfg, actor)
    fields = {"group": group, "member": member, "actor": who, "reason": reason}
    _publish(call, "add_member", f"added {member} to {group}", fields, ("actor", "reason"))


@api_command(app, "remove-member")
def remove_member(
    call: ApiCall,
    group: GroupArg,
    member: MemberArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Remove MEMBER from GROUP (direct membership); print the consistency token."""
    who = resolve_actor(call.cfg, actor)
    fields = {"group": group, "member": member, "actor": who, "reason": reason}
    _publish(call, "remove_member", f"removed {member} from {group}", fields, ("actor", "reason"))


def split_actions(values: list[str]) -> list[str]:
    """Actions given as separate arguments and/or comma-separated, in order, deduplicated."""
    actions: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if name and name not in actions:
                actions.append(name)
    return actions


@api_command(app, "define-role")
def define_role(
    call: ApiCall,
    role: Annotated[str, typer.Argument(help="Role name, e.g. editor (granted as role:editor).")],
    actions: Annotated[
        list[str], typer.Argument(help="Actions the role means: 'read write' or 'read,write'.")
    ],
    actor: ActorOpt = None,
) -> None:
    """Define ROLE as exactly ACTIONS (replacing any earlier definition); print the token."""
    names = split_actions(actions)
    if not names:
        usage_error(call.cfg, "define-role needs at least one action")
    who = resolve_actor(call.cfg, actor)
    fields = {"role": role, "actions": names, "actor": who}
    summary = f"defined role {role} = {', '.join(names)}"
    _publish(call, "define_role", summary, fields, ("actor",))


# --------------------------------------------------------------------------- reads


def _decided(
    cfg: CliConfig,
    result: Decision | AuditDecision,
    principal: str,
    resource: str,
    action: str,
    *,
    at: str | None = None,
) -> None:
    reasons = [plain(reason) for reason in result.reasons]
    token = result.token if isinstance(result, Decision) else None
    if cfg.as_json:
        body: dict[str, Any] = {"allowed": result.allowed, "reasons": reasons}
        if token is not None:
            body["token"] = token
        if at is not None:
            body["at"] = at
        emit_json(body)
    else:
        render.decision(
            render.stdout_console(),
            allowed=result.allowed,
            principal=principal,
            resource=resource,
            action=action,
            reasons=reasons,
            token=token,
            at=at,
        )
    raise typer.Exit(int(ExitCode.OK if result.allowed else ExitCode.DENIED))


@api_command(
    app, "check", epilog="Exit code 0 when allowed, 1 when denied; 2-5 as for every command."
)
def check(
    call: ApiCall,
    principal: PrincipalArg,
    resource: ResourceArg,
    action: ActionArg,
    at_least: Annotated[
        str | None,
        typer.Option(
            "--at-least",
            help="A consistency token from a write or read: answer from a view at least that "
            "fresh (503, exit 4, past the service's wait bound).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """May PRINCIPAL perform ACTION on RESOURCE now? Exit 0 allowed, 1 denied."""
    result = call.client.check(principal, resource, action, tenant=call.tenant, at_least=at_least)
    _decided(call.cfg, result, principal, resource, action)


@api_command(
    app, "audit-check", epilog="Exit code 0 when allowed, 1 when denied; 2-5 as for every command."
)
def audit_check(
    call: ApiCall,
    principal: PrincipalArg,
    resource: ResourceArg,
    action: ActionArg,
    at: Annotated[
        str,
        typer.Option("--at", help="RFC 3339 time, e.g. 2025-01-31T12:00:00Z.", show_default=False),
    ],
) -> None:
    """Could PRINCIPAL perform ACTION on RESOURCE at a past time? Exit 0 allowed, 1 denied.

    Needs the audit scope.
    """
    result = call.client.audit_check(principal, resource, action, at, tenant=call.tenant)
    _decided(call.cfg, result, principal, resource, action, at=at)


def _listed(cfg: CliConfig, key: str, listing: Listing, noun: str) -> None:
    if cfg.as_json:
        body: dict[str, Any] = {key: listing.items, "next_cursor": listing.next_cursor}
        if listing.token is not None:
            body["token"] = listing.token
        emit_json(body)
        return
    console = render.stdout_console()
    if key == "permissions":
        render.permissions(console, listing.items)
    elif key == "principals":
        render.principals(console, listing.items)
    else:
        render.history(console, listing.items)
    count = f"{len(listing.items)} {noun if len(listing.items) != 1 else noun[:-1]}"
    if listing.next_cursor:
        note(f"{count}; more remain: --cursor {listing.next_cursor}")
    else:
        note(count)


LimitAll = Annotated[
    int | None,
    typer.Option(
        "--limit", min=1, help="At most N items (default: every page).", show_default=False
    ),
]


@api_command(app, "who-can")
def who_can(
    call: ApiCall,
    resource: ResourceArg,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action (default: every action).", show_default=False
        ),
    ] = None,
    limit: LimitAll = None,
    cursor: CursorOpt = None,
) -> None:
    """Every user and service (through groups) that may act on RESOURCE; follows all pages."""

    def fetch(page_cursor: str | None, size: int) -> Page[Any]:
        return call.client.who_can_page(
            resource, action=action, tenant=call.tenant, cursor=page_cursor, limit=size
        )

    listing = collect(fetch, limit=limit, cursor=cursor)
    _listed(call.cfg, "principals", listing, "principals")


@api_command(app, "permissions")
def permissions(
    call: ApiCall,
    principal: PrincipalArg,
    limit: LimitAll = None,
    cursor: CursorOpt = None,
) -> None:
    """Every effective (resource pattern, action) PRINCIPAL holds; follows all pages."""

    def fetch(page_cursor: str | None, size: int) -> Page[Any]:
        return call.client.permissions_page(
            principal, tenant=call.tenant, cursor=page_cursor, limit=size
        )

    listing = collect(fetch, limit=limit, cursor=cursor)
    _listed(call.cfg, "permissions", listing, "permissions")


@api_command(app, "history")
def history(
    call: ApiCall,
    principal: Annotated[
        str | None,
        typer.Option(
            "--principal",
            help="Events naming this principal (as principal, group or member).",
            show_default=False,
        ),
    ] = None,
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource", help="Events naming this resource or pattern.", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Recorded at or after this RFC 3339 time.", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Recorded at or before this RFC 3339 time.", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most N events, following cursors.")
    ] = 100,
    every: Annotated[
        bool, typer.Option("--all", help="Every matching event (ignores --limit).")
    ] = False,
    cursor: CursorOpt = None,
) -> None:
    """The recorded events (audit timeline), oldest first; the whole tenant log without filters.

    Needs the audit scope. With --json, `next_cursor` resumes with --cursor.
    """

    def fetch(page_cursor: str | None, size: int) -> Page[Any]:
        return call.client.audit_events_page(
            tenant=call.tenant,
            principal=principal,
            resource=resource,
            since=since,
            until=until,
            cursor=page_cursor,
            limit=size,
        )

    listing = collect(fetch, limit=None if every else limit, cursor=cursor)
    _listed(call.cfg, "events", listing, "events")


if __name__ == "__main__":
    app()
