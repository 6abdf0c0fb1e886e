"""Operator commands of the `permstore` CLI: rebuild, generations, status."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout import catalogue
from permstore.adapters.settings import Settings
from permstore.services import ops
from permstore.services.cli.options import JsonOpt

console = Console(stderr=True)
generations_app = typer.Typer(help="List or drop generations of views.", no_args_is_help=False)

JsonFlag = JsonOpt


def rebuild(
    no_switch: Annotated[
        bool, typer.Option("--no-switch", help="Build and verify, but keep the old generation.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Replay the topic into a new generation while the current one serves, verify, switch."""
    settings = Settings()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        task = bar.add_task("replaying", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = ops.rebuild(
            settings, report, switch=not no_switch, log=lambda m: console.print(f"[bold]{m}")
        )
    if as_json:
        print(json.dumps(result.__dict__))
    if result.mismatches:
        console.print(f"[red]mismatched tenants: {', '.join(result.mismatches[:20])}")
        raise typer.Exit(1)


@generations_app.callback(invoke_without_command=True)
def generations(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List generations; the active one is marked."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings()
    cluster, session = connect(settings, "admin")
    try:
        rows = catalogue.list_generations(session, settings.cassandra_keyspace)
    finally:
        cluster.shutdown()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        **g.__dict__,
                        "created_at": str(g.created_at),
                        "switched_at": str(g.switched_at),
                    }
                    for g in rows
                ]
            )
        )
        return
    table = Table("generation", "state", "created", "switched", "active")
    for g in rows:
        table.add_row(
            str(g.id), g.state, str(g.created_at), str(g.switched_at or ""), "*" if g.active else ""
        )
    Console().print(table)


@generations_app.command("drop")
def drop(generation: int) -> None:
    """Drop an inactive generation's tables."""
    settings = Settings()
    cluster, session = connect(settings, "admin")
    try:
        catalogue.drop_generation(session, settings.cassandra_keyspace, generation)
    except ValueError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    finally:
        cluster.shutdown()
    console.print(f"dropped generation {generation}")


def status(as_json: JsonFlag = False) -> None:
    """Servers reachable, lag per partition, dead-letter count, generation in use."""
    report = asyncio.run(ops.status(Settings()))
    if as_json:
        print(json.dumps(report))
    else:
        table = Table("what", "state")
        for key, value in report.items():
            table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
        Console().print(table)
    healthy = report.get("cassandra") == "ok" and report.get("kafka") == "ok"
    raise typer.Exit(0 if healthy else 4)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the main CLI."""
    app.command("rebuild")(rebuild)
    app.add_typer(generations_app, name="generations")
    app.command("status")(status)
