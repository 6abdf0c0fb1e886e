"""Unused-access findings and per-principal usage (contract section 7): decode, read, encode."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from permstore.adapters.cassandra_layout.usage_reader import UsageStore
from permstore.core.decisions import micros_to_rfc3339, reasons_from_sources
from permstore.core.findings import (
    DENIED,
    FINDING_KINDS,
    PERMISSION,
    Inventory,
    join,
    unused_findings,
    window_days,
)
from permstore.services.api import cursors
from permstore.services.api.deps import AuditCaller, Services, ServicesDep
from permstore.services.api.models import examples
from permstore.services.api.openapi_docs import (
    PAGED_ERRORS,
    Limit,
    PrincipalPath,
    TenantPath,
    cursor_query,
)
from permstore.services.api.queries import now_micros

router = APIRouter(prefix="/v1", tags=["usage"])
LOG_PAGE = 5000
FindingsCursor = Annotated[
    str | None, cursor_query("WyJ1bnVzZWQiLCJncmFudCIsInVzZXI6Ym9ifGRvYzp4fHJlYWQiXQ")
]
UsageCursor = Annotated[str | None, cursor_query("WyJ1c2FnZSIsImRvYzphY21lL2VuZy8qIiwicmVhZCJd")]


EXAMPLE_FINDING: dict[str, Any] = {
    "kind": "grant",
    "id": "grant:user:bob|doc:acme/eng/*|read",
    "grant": {
        "principal": "user:bob",
        "resource": "doc:acme/eng/*",
        "permission": "read",
        "expires_at": None,
    },
    "granted_at": "2026-01-05T09:00:00Z",
    "granted_by": "user:admin",
    "granted_by_event": "g-17",
    "last_used_at": None,
    "uses": 0,
    "recommendation": {
        "event": {
            "type": "revoke",
            "tenant": "acme",
            "principal": "user:bob",
            "resource": "doc:acme/eng/*",
            "permission": "read",
            "reason": "permstore finding: unused for 90 days",
        }
    },
}


class FindingsPage(BaseModel):
    """A page of unused-access findings, each with its evidence and a recommended event."""

    model_config = examples(
        {
            "findings": [EXAMPLE_FINDING],
            "next_cursor": "WyJ1bnVzZWQiLCJncmFudCIsInVzZXI6Ym9ifGRvYzp4fHJlYWQiXQ",
            "as_of": "2026-04-05T12:00:00Z",
            "days": 90,
        }
    )

    findings: list[dict[str, Any]] = Field(
        description="Findings: kind, id, grant | membership | role_action, granted_at, "
        "granted_by, granted_by_event, last_used_at (null: never), uses (in the window) and "
        "recommendation.event (a complete event without event_id, actor and occurred_at)"
    )
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page")
    as_of: str = Field(description="The time the window ends at (RFC 3339)")
    days: int = Field(description="The window in days")


class UsageItem(BaseModel):
    """One effective permission of the principal and its last use."""

    model_config = examples(
        {
            "resource": "doc:acme/eng/*",
            "action": "read",
            "last_used_at": "2026-04-01T08:00:00Z",
            "uses": 3,
        }
    )

    resource: str = Field(description="Resource pattern of the effective permission")
    action: str = Field(description="The action")
    last_used_at: str | None = Field(description="Last use (RFC 3339); null: not used")
    uses: int = Field(description="Uses in the window")


class DeniedSummary(BaseModel):
    """Decisions that refused the principal in the window, and the last one."""

    model_config = examples({"count": 2, "last_at": "2026-04-01T08:00:00Z"})

    count: int = Field(description="Refused decisions in the window")
    last_at: str | None = Field(description="The last refused decision (RFC 3339), or null")


class PrincipalUsagePage(BaseModel):
    """A page of the principal's effective permissions with their last use."""

    model_config = examples(
        {
            "permissions": [
                {
                    "resource": "doc:acme/eng/*",
                    "action": "read",
                    "last_used_at": "2026-04-01T08:00:00Z",
                    "uses": 12,
                }
            ],
            "next_cursor": "WyJ1c2FnZSIsImRvYzphY21lL2VuZy8qIiwicmVhZCJd",
            "days": 90,
            "denied": {"count": 1, "last_at": "2026-04-02T10:00:00Z"},
        }
    )

    permissions: list[UsageItem] = Field(description="Effective permissions with their use")
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page")
    days: int = Field(description="The window of `uses` in days")
    denied: DeniedSummary = Field(description="Refused decisions of the principal")


def usage_now(services: Services) -> int:
    """The clock usage and findings use: the wall clock, shifted only where tests set it."""
    return now_micros() + round(services.settings.usage_clock_offset_seconds * 1_000_000)


def usage_store(request: Request) -> UsageStore:
    """The usage tables' reader of this process."""
    store: UsageStore = request.app.state.usage_store
    return store


async def tenant_inventory(services: Services, tenant: str) -> Inventory:
    """What exists in the tenant now and since when, folded from its whole event log (or the
    fold remembered while the tenant's position has not moved; callers must not change it)."""
    reader = services.reader
    point = await reader.position(tenant)
    if (known := services.inventories.get(tenant, point)) is not None:
        return known
    inventory = Inventory()
    for month in await reader.months(tenant):
        after = (-1, -1)
        while True:
            rows = await reader.log_page(tenant, month, after, 2**62, LOG_PAGE)
            for row in rows:
                inventory.apply(orjson.loads(row.event), row.recorded_at)
                after = (row.recorded_at, row.offset)
            if len(rows) < LOG_PAGE:
                break
    services.inventories.put(tenant, point, inventory)
    return inventory


@router.get(
    "/tenants/{tenant}/findings/unused",
    response_model=FindingsPage,
    responses=PAGED_ERRORS,
    summary="Unused access",
    description=(
        "Grants, memberships and role actions that existed for at least `days` days and were "
        "not used in the last `days` days (`days=0`: never used), each with when and by whom "
        "it was granted, its last use (null: never in the retention), its uses in the window "
        "and a recommended event (revoke, remove_member, define_role with fewer actions, or "
        "delete_role when none would stay) to fill with event_id, actor and occurred_at and "
        "POST. Usage appears within about 15 s of a decision. Paged like the other lists. "
        "Needs the `audit` scope."
    ),
)
async def unused(
    request: Request,
    tenant: TenantPath,
    caller: AuditCaller,
    services: ServicesDep,
    days: Annotated[
        int, Query(ge=0, le=3650, description="Window in days (0: never used)", examples=[90])
    ] = 90,
    kind: Annotated[
        Literal["grant", "membership", "role_action"] | None,
        Query(description="Only findings of this kind", examples=["grant"]),
    ] = None,
    cursor: FindingsCursor = None,
    limit: Limit = 100,
) -> FindingsPage:
    """Unused grants, memberships and role actions over a window of days, with evidence."""
    after = cursors.decode_cursor("unused", cursor, 2)
    now = usage_now(services)
    store = usage_store(request)
    kinds = [kind] if kind else list(FINDING_KINDS)
    inventory = await tenant_inventory(services, tenant)
    last_used = await store.last_used(tenant, kinds)
    retained = min(days, services.settings.usage_retention_days)
    uses = await store.uses(tenant, kinds, window_days(now, retained))
    found = [
        f for f in unused_findings(tenant, inventory, last_used, uses, now, days) if f.kind in kinds
    ]
    if after is not None:
        mark = (FINDING_KINDS.index(after[0]) if after[0] in FINDING_KINDS else -1, after[1])
        found = [f for f in found if f.sort_key > mark]
    page = found[:limit]
    next_cursor = (
        cursors.encode_cursor("unused", [page[-1].kind, page[-1].item])
        if len(found) > limit
        else None
    )
    return FindingsPage(
        findings=[f.as_json() for f in page],
        next_cursor=next_cursor,
        as_of=micros_to_rfc3339(now) or "",
        days=days,
    )


@router.get(
    "/tenants/{tenant}/principals/{principal}/usage",
    response_model=PrincipalUsagePage,
    responses=PAGED_ERRORS,
    summary="A principal's permissions and their last use",
    description=(
        "Every effective (resource pattern, action) of the principal, as the permissions list "
        "gives them, with its last use (null: not used within the retention) and its uses in "
        "the last `days` days (default 90); `denied` counts the principal's refused decisions "
        "in the same window. What an access review needs. Needs the `audit` scope."
    ),
)
async def principal_usage(
    request: Request,
    tenant: TenantPath,
    principal: PrincipalPath,
    caller: AuditCaller,
    services: ServicesDep,
    days: Annotated[
        int, Query(ge=1, le=3650, description="Window of `uses` in days", examples=[90])
    ] = 90,
    cursor: UsageCursor = None,
    limit: Limit = 100,
) -> PrincipalUsagePage:
    """The principal's effective permissions with last use and uses in the window."""
    after = cursors.decode_cursor("usage", cursor, 2) or ["", ""]
    reader = services.reader
    wall = time.time_ns() // 1000
    key = (str(after[0]), str(after[1]))
    found: list[tuple[str, str]] = []
    more = True
    while len(found) <= limit and more:
        rows = await reader.permissions_page(tenant, principal, key, limit + 1)
        more = len(rows) == limit + 1
        for pattern, action, sources in rows:
            key = (pattern, action)
            if reasons_from_sources(principal, pattern, (sources or {}).items(), wall):
                found.append((pattern, action))
    has_next = len(found) > limit
    found = found[:limit]
    store = usage_store(request)
    now = usage_now(services)
    buckets = window_days(now, min(days, services.settings.usage_retention_days))
    last = await store.principal_last_used(tenant, PERMISSION, principal)
    uses = await store.principal_uses(tenant, PERMISSION, principal, buckets)
    denied_last = await store.item_last_used(tenant, DENIED, principal)
    denied_uses = await store.item_uses(tenant, DENIED, principal, buckets)
    items = []
    for pattern, action in found:
        item = join(principal, pattern, action)
        used = last.get(item)
        items.append(
            UsageItem(
                resource=pattern,
                action=action,
                last_used_at=None if used is None else micros_to_rfc3339(used),
                uses=uses.get(item, 0),
            )
        )
    next_cursor = cursors.encode_cursor("usage", [found[-1][0], found[-1][1]]) if has_next else None
    return PrincipalUsagePage(
        permissions=items,
        next_cursor=next_cursor,
        days=days,
        denied=DeniedSummary(
            count=denied_uses,
            last_at=None if denied_last is None else micros_to_rfc3339(denied_last),
        ),
    )
