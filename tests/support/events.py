"""The one builder of contract events (section 2) for tests and benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

ADMIN = "user:admin"
FIXED_OCCURRED_AT = "2026-01-01T00:00:00Z"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 text of an aware time, with a Z suffix for UTC."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event(
    tenant: str,
    kind: str,
    *,
    event_id: str | None = None,
    actor: str = ADMIN,
    occurred_at: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One event: a fresh id and the time now unless given; fields that are None are left out."""
    body: dict[str, Any] = {
        "event_id": event_id or uuid.uuid4().hex,
        "tenant": tenant,
        "type": kind,
        "actor": actor,
        "occurred_at": occurred_at or rfc3339(datetime.now(UTC)),
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def grant(
    tenant: str, principal: str, resource: str, permission: str, **extra: Any
) -> dict[str, Any]:
    """A grant event."""
    return event(
        tenant, "grant", principal=principal, resource=resource, permission=permission, **extra
    )


def revoke(
    tenant: str, principal: str, resource: str, permission: str, **extra: Any
) -> dict[str, Any]:
    """A revoke event."""
    return event(
        tenant, "revoke", principal=principal, resource=resource, permission=permission, **extra
    )


def add_member(tenant: str, group: str, member: str, **extra: Any) -> dict[str, Any]:
    """An add_member event."""
    return event(tenant, "add_member", group=group, member=member, **extra)


def remove_member(tenant: str, group: str, member: str, **extra: Any) -> dict[str, Any]:
    """A remove_member event."""
    return event(tenant, "remove_member", group=group, member=member, **extra)


def define_role(tenant: str, role: str, actions: Sequence[str], **extra: Any) -> dict[str, Any]:
    """A define_role event."""
    return event(tenant, "define_role", role=role, actions=list(actions), **extra)


def delete_role(tenant: str, role: str, **extra: Any) -> dict[str, Any]:
    """A delete_role event."""
    return event(tenant, "delete_role", role=role, **extra)
