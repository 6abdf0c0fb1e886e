"""`python -m services.cli`: the permstore command."""

from services.cli import app

app()
