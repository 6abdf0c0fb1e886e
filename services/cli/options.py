"""The CLI's options, declared once: the global ones at the top level (where the environment is
read) and the same options repeated after a command name (where only the flag is read)."""

from __future__ import annotations

from typing import Annotated

import typer

CONNECTION = "Connection and output"
EVENT = "Event"

# The global options, given before the command (these read the environment).
RootUrlOpt = Annotated[str, typer.Option("--url", envvar="PERMSTORE_URL", help="API base URL.")]
RootTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="PERMSTORE_TOKEN",
        help="Caller token (prefer the environment variable).",
        show_default=False,
        show_envvar=True,
    ),
]
RootTenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", envvar="PERMSTORE_TENANT", help="Tenant id.", show_default=False),
]
RootJsonOpt = Annotated[bool, typer.Option("--json", help="Plain JSON on stdout.")]
RootTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", envvar="PERMSTORE_TIMEOUT", min=0.1, help="Seconds to wait per request."
    ),
]

# Options repeated on every command (no env var here: the top level reads the environment).
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="API base URL.", show_default=False, rich_help_panel=CONNECTION),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Caller token (prefer PERMSTORE_TOKEN).",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant id.", show_default=False, rich_help_panel=CONNECTION),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Plain JSON on stdout, for scripts.", rich_help_panel=CONNECTION),
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor",
        envvar="PERMSTORE_ACTOR",
        help="Principal recorded as the event's actor; default: the token's subject.",
        show_default=False,
        rich_help_panel=EVENT,
    ),
]
ReasonOpt = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Ticket or justification, recorded for audit (up to 1024 chars).",
        show_default=False,
        rich_help_panel=EVENT,
    ),
]
PrincipalArg = Annotated[str, typer.Argument(help="user:<id>, service:<id> or group:<id>.")]
ResourceArg = Annotated[str, typer.Argument(help="A concrete resource, <type>:<path>.")]
PatternArg = Annotated[
    str, typer.Argument(help="A resource or a pattern: <type>:<path>/* or <type>:*.")
]
ActionArg = Annotated[str, typer.Argument(help="An action, e.g. read.")]
PermissionArg = Annotated[str, typer.Argument(help="An action, or role:<name>.")]
GroupArg = Annotated[str, typer.Argument(help="The group, group:<id>.")]
MemberArg = Annotated[str, typer.Argument(help="The member: any principal, groups included.")]
CursorOpt = Annotated[
    str | None,
    typer.Option(
        "--cursor", help="Resume after an earlier listing (its next_cursor).", show_default=False
    ),
]
AfterOpt = Annotated[
    str | None,
    typer.Option(
        "--after",
        help="A change token (a change's position, or the next of a listing): start after it. "
        "Default: from now.",
        show_default=False,
    ),
]
ChangesLimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help="At most N changes (default: the service's page).",
        show_default=False,
    ),
]
