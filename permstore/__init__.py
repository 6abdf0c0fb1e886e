"""permstore Python client: typed, sync and async, for services that ask permstore."""

from services.client import (
    AsyncPermstoreClient,
    CheckResult,
    PermstoreClient,
    PermstoreError,
    require_permission,
)

__all__ = [
    "AsyncPermstoreClient",
    "CheckResult",
    "PermstoreClient",
    "PermstoreError",
    "require_permission",
]
