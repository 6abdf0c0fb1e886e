"""The `permstore` command line."""

from __future__ import annotations

import typer

from services.token_cli import token_app

app = typer.Typer(help="permstore: event-sourced authorization service", no_args_is_help=True)
app.add_typer(token_app, name="token", help="Issue tokens and API keys for callers.")

if __name__ == "__main__":
    app()
