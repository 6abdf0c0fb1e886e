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
    JsonOpt,
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
    TenantOpt,
    TokenOpt,
    UrlOpt,
)
from permstore.services.cli.support import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    EXIT_CODES_HELP,
    CliConfig,
    ExitCode,
    Listing,
    collect,
    configure_cli_logging,
    emit_json,
    guard,
    new_event,
    note,
    open_client,
    plain,
    require_tenant,
    resolve_actor,
    root_config,
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


def _config(
    ctx: typer.Context, url: str | None, token: str | None, tenant: str | None, as_json: bool
) -> CliConfig:
    return root_config(ctx).merged(url=url, token=token, tenant=tenant, as_json=as_json)


def _written(cfg: CliConfig, token: str, summary: str, event: dict[str, Any]) -> None:
    """A write's consistency token alone on stdout (or JSON); what was done on stderr."""
    if cfg.as_json:
        emit_json({"token": token, **{k: v for k, v in event.items() if v is not None}})
    else:
        typer.echo(token)
        note(summary)


# --------------------------------------------------------------------------- writes


@app.command("grant")
def grant(
    ctx: typer.Context,
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant PERMISSION on RESOURCE to PRINCIPAL; print the consistency token.

    Pass the token to `check --at-least` to read your own write.
    """
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id, who = require_tenant(cfg), resolve_actor(cfg, actor)
        with open_client(cfg) as client:
            event = new_event(
                cfg,
                client,
                "grant",
                tenant_id,
                principal=principal,
                resource=resource,
                permission=permission,
                expires_at=expires_at,
                actor=who,
                reason=reason,
            )
            written = client.publish([event]).token
        until = f" until {expires_at}" if expires_at else ""
        _written(
            cfg,
            written,
            f"granted {permission} on {resource} to {principal}{until} (tenant {tenant_id})",
            {
                "type": "grant",
                "tenant": tenant_id,
                "principal": principal,
                "resource": resource,
                "permission": permission,
                "expires_at": expires_at,
                "actor": who,
            },
        )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    principal: PrincipalArg,
    resource: PatternArg,
    permission: PermissionArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke the grant (PRINCIPAL, RESOURCE, PERMISSION); print the consistency token."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id, who = require_tenant(cfg), resolve_actor(cfg, actor)
        with open_client(cfg) as client:
            event = new_event(
                cfg,
                client,
                "revoke",
                tenant_id,
                principal=principal,
                resource=resource,
                permission=permission,
                actor=who,
                reason=reason,
            )
            written = client.publish([event]).token
        _written(
            cfg,
            written,
            f"revoked {permission} on {resource} from {principal} (tenant {tenant_id})",
            {
                "type": "revoke",
                "tenant": tenant_id,
                "principal": principal,
                "resource": resource,
                "permission": permission,
                "actor": who,
            },
        )


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    group: GroupArg,
    member: MemberArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make MEMBER a member of GROUP; print the consistency token."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id, who = require_tenant(cfg), resolve_actor(cfg, actor)
        with open_client(cfg) as client:
            event = new_event(
                cfg,
                client,
                "add_member",
                tenant_id,
                group=group,
                member=member,
                actor=who,
                reason=reason,
            )
            written = client.publish([event]).token
        _written(
            cfg,
            written,
            f"added {member} to {group} (tenant {tenant_id})",
            {"type": "add_member", "tenant": tenant_id, "group": group, "member": member},
        )


@app.command("remove-member")
def remove_member(
    ctx: typer.Context,
    group: GroupArg,
    member: MemberArg,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove MEMBER from GROUP (direct membership); print the consistency token."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id, who = require_tenant(cfg), resolve_actor(cfg, actor)
        with open_client(cfg) as client:
            event = new_event(
                cfg,
                client,
                "remove_member",
                tenant_id,
                group=group,
                member=member,
                actor=who,
                reason=reason,
            )
            written = client.publish([event]).token
        _written(
            cfg,
            written,
            f"removed {member} from {group} (tenant {tenant_id})",
            {"type": "remove_member", "tenant": tenant_id, "group": group, "member": member},
        )


def split_actions(values: list[str]) -> list[str]:
    """Actions given as separate arguments and/or comma-separated, in order, deduplicated."""
    actions: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if name and name not in actions:
                actions.append(name)
    return actions


@app.command("define-role")
def define_role(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="Role name, e.g. editor (granted as role:editor).")],
    actions: Annotated[
        list[str], typer.Argument(help="Actions the role means: 'read write' or 'read,write'.")
    ],
    actor: ActorOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Define ROLE as exactly ACTIONS (replacing any earlier definition); print the token."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        names = split_actions(actions)
        if not names:
            usage_error(cfg, "define-role needs at least one action")
        tenant_id, who = require_tenant(cfg), resolve_actor(cfg, actor)
        with open_client(cfg) as client:
            event = new_event(
                cfg, client, "define_role", tenant_id, role=role, actions=names, actor=who
            )
            written = client.publish([event]).token
        _written(
            cfg,
            written,
            f"defined role {role} = {', '.join(names)} (tenant {tenant_id})",
            {"type": "define_role", "tenant": tenant_id, "role": role, "actions": names},
        )


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


@app.command("check", epilog="Exit code 0 when allowed, 1 when denied; 2-5 as for every command.")
def check(
    ctx: typer.Context,
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """May PRINCIPAL perform ACTION on RESOURCE now? Exit 0 allowed, 1 denied."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:
            result = client.check(principal, resource, action, tenant=tenant_id, at_least=at_least)
        _decided(cfg, result, principal, resource, action)


@app.command(
    "audit-check", epilog="Exit code 0 when allowed, 1 when denied; 2-5 as for every command."
)
def audit_check(
    ctx: typer.Context,
    principal: PrincipalArg,
    resource: ResourceArg,
    action: ActionArg,
    at: Annotated[
        str,
        typer.Option("--at", help="RFC 3339 time, e.g. 2025-01-31T12:00:00Z.", show_default=False),
    ],
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Could PRINCIPAL perform ACTION on RESOURCE at a past time? Exit 0 allowed, 1 denied.

    Needs the audit scope.
    """
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:
            result = client.audit_check(principal, resource, action, at, tenant=tenant_id)
        _decided(cfg, result, principal, resource, action, at=at)


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


@app.command("who-can")
def who_can(
    ctx: typer.Context,
    resource: ResourceArg,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action (default: every action).", show_default=False
        ),
    ] = None,
    limit: LimitAll = None,
    cursor: CursorOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every user and service (through groups) that may act on RESOURCE; follows all pages."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:

            def fetch(page_cursor: str | None, size: int) -> Page[Any]:
                return client.who_can_page(
                    resource, action=action, tenant=tenant_id, cursor=page_cursor, limit=size
                )

            listing = collect(fetch, limit=limit, cursor=cursor)
        _listed(cfg, "principals", listing, "principals")


@app.command("permissions")
def permissions(
    ctx: typer.Context,
    principal: PrincipalArg,
    limit: LimitAll = None,
    cursor: CursorOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every effective (resource pattern, action) PRINCIPAL holds; follows all pages."""
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:

            def fetch(page_cursor: str | None, size: int) -> Page[Any]:
                return client.permissions_page(
                    principal, tenant=tenant_id, cursor=page_cursor, limit=size
                )

            listing = collect(fetch, limit=limit, cursor=cursor)
        _listed(cfg, "permissions", listing, "permissions")


@app.command("history")
def history(
    ctx: typer.Context,
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The recorded events (audit timeline), oldest first; the whole tenant log without filters.

    Needs the audit scope. With --json, `next_cursor` resumes with --cursor.
    """
    cfg = _config(ctx, url, token, tenant, as_json)
    with guard(cfg):
        tenant_id = require_tenant(cfg)
        with open_client(cfg) as client:

            def fetch(page_cursor: str | None, size: int) -> Page[Any]:
                return client.audit_events_page(
                    tenant=tenant_id,
                    principal=principal,
                    resource=resource,
                    since=since,
                    until=until,
                    cursor=page_cursor,
                    limit=size,
                )

            listing = collect(fetch, limit=None if every else limit, cursor=cursor)
        _listed(cfg, "events", listing, "events")


if __name__ == "__main__":
    app()
