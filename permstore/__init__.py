"""permstore: the server's one import namespace, and the Python client under its old names.

The server's packages are the top-level folders of the repository, linked in here
(`permstore.core` is `permcore/`; `permstore.services`, `.streams`, `.schemas`, `.adapters` and
`.deploy` are the folders of those names), so `pip install` adds only `permstore` to
site-packages (ADR 0018).

The client names resolve on first use, so the server, and the deploy scripts that run before
any virtualenv exists, import this package without the client kit installed. `CheckResult` is
the kit's `Decision`. The old `require_permission` has no equivalent: guard FastAPI routes with
`Guard(client, tenant).require(...)` or `require(...)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from permstore_client import (
        AsyncPermstoreClient,
        Decision,
        Guard,
        PermstoreClient,
        PermstoreError,
        require,
    )
    from permstore_client import Decision as CheckResult

__all__ = [
    "AsyncPermstoreClient",
    "CheckResult",
    "Decision",
    "Guard",
    "PermstoreClient",
    "PermstoreError",
    "require",
]

_RENAMED = {"CheckResult": "Decision"}


def __getattr__(name: str) -> Any:
    """Resolve a client name from permstore_client when it is first asked for."""
    if name not in __all__:
        raise AttributeError(f"module 'permstore' has no attribute {name!r}")
    return getattr(importlib.import_module("permstore_client"), _RENAMED.get(name, name))
