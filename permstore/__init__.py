"""permstore Python client: the client kit (permstore_client), re-exported under the old names.

`CheckResult` is the kit's `Decision`. The old `require_permission` has no equivalent: guard
FastAPI routes with `Guard(client, tenant).require(...)` or `require(...)`.
"""

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
