"""`python -m permstore.services.cli`: the permstore command."""

from permstore.services.cli import app

app()
