"""The `permstore` command line as a package: one set of global options, one way to add a group.

`commands` holds the root app and the API commands, `options` the shared options, `support` the
configuration, errors and paging, `render` the tables; `ops`, `tokens`, `findings` and `dev` are
command groups.
"""

from permstore.services.cli.commands import app, split_actions

__all__ = ["app", "split_actions"]
