"""`permstore dev`: the in-memory permstore of the client kit, for local development."""

from __future__ import annotations

from typing import Annotated

import typer


def dev(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
) -> None:
    """Serve the HTTP contract from memory (no Kafka, no Cassandra; nothing persists)."""
    from permstore_client.testing.server import run_dev

    run_dev(host, port)


def register(app: typer.Typer) -> None:
    """Add the `dev` command to the main CLI."""
    app.command("dev")(dev)
