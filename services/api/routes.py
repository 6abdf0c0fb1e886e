"""HTTP routes: decode, authorize, call the use cases (services/api/queries.py), encode."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from permstore.core.consistency import LogPoint, encode_token
from permstore.schemas.events import Action, EventBatch, Principal, event_to_json
from permstore.services.api import queries
from permstore.services.api.deps import (
    AuditCaller,
    CheckCaller,
    ServicesDep,
    WriteCaller,
    ensure_tenant,
)
from permstore.services.api.errors import ApiError
from permstore.services.api.models import (
    AuditCheckResponse,
    AuditEventsPage,
    BatchCheckRequest,
    BatchCheckResponse,
    CheckRequest,
    CheckResponse,
    EventsAccepted,
    PermissionsPage,
    PrincipalsPage,
    TenantFreshness,
)
from permstore.services.api.openapi_docs import (
    BODY_READ_ERRORS,
    PAGED_ERRORS,
    PAGING_TEXT,
    READ_ERRORS,
    SCOPE_TEXT,
    WRITE_ERRORS,
    AuditCursor,
    Limit,
    PermissionsCursor,
    PrincipalPath,
    PrincipalsCursor,
    TenantPath,
)
from permstore.services.api.queries import invalid

router = APIRouter(prefix="/v1")


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses=WRITE_ERRORS,
    summary="Publish events",
    description=(
        "Validates 1-500 events of one tenant (contract section 2) and appends them to that "
        "tenant's log, all or nothing: one invalid event refuses the request with a 422 naming "
        "each field. Answers 202 once Kafka has acknowledged every event. The views apply them "
        "shortly after, so a read that must see them passes the returned token as "
        "`consistency.at_least`. Resending an `event_id` is harmless, so retries are safe. "
        + SCOPE_TEXT.format("write")
    ),
)
async def post_events(
    request: Request, batch: EventBatch, caller: WriteCaller, services: ServicesDep
) -> EventsAccepted:
    """Validate 1-500 events of one tenant (all or nothing) and append them to the log."""
    tenants = {event.tenant for event in batch.events}
    if len(tenants) != 1:
        raise invalid("events[].tenant", "all events of one request must name the same tenant")
    tenant = tenants.pop()
    ensure_tenant(caller, tenant, request.url.path)
    if services.publisher is None:
        raise ApiError(503, "unavailable", "event ingestion is not configured on this node")
    acknowledged = await services.publisher.publish(
        services.settings.events_topic,
        tenant.encode(),
        [event_to_json(event) for event in batch.events],
    )
    last = max(acknowledged, key=lambda meta: meta.offset)
    token = encode_token(tenant, LogPoint(last.partition, last.offset))
    return EventsAccepted(accepted=len(batch.events), token=token)


@router.post(
    "/check",
    response_model=CheckResponse,
    responses=BODY_READ_ERRORS,
    summary="Check a permission",
    description=(
        "Whether the principal may perform the action on the concrete resource: through a "
        "grant of the action or of a role that includes it, held directly or through group "
        "membership, and not expired. `reasons` names every path that grants it. Answers from "
        "the tenant's current view or, with `consistency.at_least`, from a view that has "
        "applied at least that token, waiting up to a bound (5 s by default) and answering 503 "
        "`consistency_timeout` past it. `token` names the view used. " + SCOPE_TEXT.format("check")
    ),
)
async def check(
    request: Request, body: CheckRequest, caller: CheckCaller, services: ServicesDep
) -> Response:
    """May principal perform action on resource? One single-partition read."""
    return await queries.answer_check(services, caller, body, request.url.path)


@router.post(
    "/check/batch",
    response_model=BatchCheckResponse,
    responses=BODY_READ_ERRORS,
    summary="Check many permissions",
    description=(
        "1-1000 checks of one tenant, all answered from one view and returned in request "
        "order. Consistency is as for `/v1/check`: the current view, or with "
        "`consistency.at_least` a view at least that fresh (503 `consistency_timeout` past the "
        "bound). " + SCOPE_TEXT.format("check")
    ),
)
async def check_batch(
    request: Request, body: BatchCheckRequest, caller: CheckCaller, services: ServicesDep
) -> Response:
    """Up to 1000 checks of one tenant, read concurrently, answered in request order."""
    return await queries.answer_batch(services, caller, body, request.url.path)


@router.get(
    "/tenants/{tenant}/principals/{principal}/permissions",
    response_model=PermissionsPage,
    responses=PAGED_ERRORS,
    summary="List a principal's permissions",
    description=(
        "Every effective (resource pattern, action) the principal holds, directly or through "
        "groups, with the paths that grant it and when it lapses, ordered by pattern and "
        "action. Reads the tenant's current view; `token` names it. "
        + PAGING_TEXT
        + " "
        + SCOPE_TEXT.format("check")
    ),
)
async def list_permissions(
    tenant: TenantPath,
    principal: PrincipalPath,
    caller: CheckCaller,
    services: ServicesDep,
    cursor: PermissionsCursor = None,
    limit: Limit = 100,
) -> PermissionsPage:
    """Every effective (resource pattern, action) the principal holds, with reasons."""
    return await queries.permissions_page(services, tenant, principal, cursor, limit)


@router.get(
    "/tenants/{tenant}/resources/{resource:path}/principals",
    response_model=PrincipalsPage,
    responses=PAGED_ERRORS,
    summary="Who can act on a resource",
    description=(
        "Every user and service that may act on the concrete resource, groups expanded to "
        "their members (a group itself never appears), with the paths that grant it, ordered "
        "by principal and action; `action` keeps one action only. The resource may contain "
        "`/`; percent-encode the rest. Reads the tenant's current view; `token` names it. "
        + PAGING_TEXT
        + " "
        + SCOPE_TEXT.format("check")
    ),
)
async def who_can(
    tenant: TenantPath,
    resource: Annotated[
        str,
        Path(
            description="A concrete resource, <type>:<path>; it may contain /",
            examples=["doc:acme/eng/spec-1"],
        ),
    ],
    caller: CheckCaller,
    services: ServicesDep,
    action: Annotated[
        Action | None, Query(description="Only this action", examples=["read"])
    ] = None,
    cursor: PrincipalsCursor = None,
    limit: Limit = 100,
) -> PrincipalsPage:
    """Every user and service (expanded through groups) that may act on the resource."""
    return await queries.who_can(services, tenant, resource, action, cursor, limit)


@router.get(
    "/tenants/{tenant}/freshness",
    response_model=TenantFreshness,
    responses=READ_ERRORS,
    summary="View freshness of a tenant",
    description=(
        "The newest event of the tenant's log that its views have applied, as a token and a "
        "log offset (-1 before any event), and when the processor applied it. Read fresh "
        "from the store, not from this node's cache. " + SCOPE_TEXT.format("check")
    ),
)
async def tenant_freshness(
    tenant: TenantPath, caller: CheckCaller, services: ServicesDep
) -> TenantFreshness:
    """The newest event applied to the tenant's views and how long ago that was."""
    return await queries.freshness(services, tenant)


@router.get(
    "/tenants/{tenant}/audit/events",
    response_model=AuditEventsPage,
    responses=PAGED_ERRORS,
    summary="Audit timeline",
    description=(
        "The recorded events naming the principal (as grantee, group or member) or the "
        "resource, oldest first, recorded between `from` and `to` (both inclusive); without "
        "either filter, the tenant's whole log. Events that changed nothing (a revoke of a "
        "missing grant, say) are listed too. " + PAGING_TEXT + " " + SCOPE_TEXT.format("audit")
    ),
)
async def audit_events(
    tenant: TenantPath,
    caller: AuditCaller,
    services: ServicesDep,
    principal: Annotated[
        Principal | None,
        Query(
            description="Events naming this principal as grantee, group or member",
            examples=["user:alice"],
        ),
    ] = None,
    resource: Annotated[
        str | None,
        Query(
            max_length=2200,
            description="Events naming this resource or pattern",
            examples=["doc:acme/eng/*"],
        ),
    ] = None,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="Earliest recorded time (RFC 3339, inclusive)",
            examples=["2026-01-01T00:00:00Z"],
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Latest recorded time (RFC 3339, inclusive)",
            examples=["2026-02-01T00:00:00Z"],
        ),
    ] = None,
    cursor: AuditCursor = None,
    limit: Limit = 100,
) -> AuditEventsPage:
    """Recorded events naming the principal (as principal, group or member) or the resource."""
    return await queries.audit_events(
        services, tenant, principal, resource, from_, to, cursor, limit
    )


@router.get(
    "/tenants/{tenant}/audit/check",
    response_model=AuditCheckResponse,
    responses=READ_ERRORS,
    summary="Check at a past time",
    description=(
        "The answer `/v1/check` would have given at time `at`, with the paths that granted it "
        "then: the tenant's log recorded up to `at` is replayed (from the nearest snapshot) "
        "and `replayed_events` says how many events that took. Expiry is judged at `at`. "
        + SCOPE_TEXT.format("audit")
    ),
)
async def audit_check(
    tenant: TenantPath,
    caller: AuditCaller,
    services: ServicesDep,
    principal: Annotated[
        Principal,
        Query(description="user:<id>, service:<id> or group:<id>", examples=["user:alice"]),
    ],
    resource: Annotated[
        str,
        Query(
            max_length=2200,
            description="A concrete resource, <type>:<path>",
            examples=["doc:acme/eng/spec-1"],
        ),
    ],
    action: Annotated[Action, Query(description="The action", examples=["read"])],
    at: Annotated[
        str,
        Query(
            max_length=64,
            description="The past time to answer at (RFC 3339 with a timezone)",
            examples=["2026-02-01T12:00:00Z"],
        ),
    ],
) -> AuditCheckResponse:
    """The answer contract section 3 gives at a past time, by replaying the log up to it."""
    return await queries.audit_check(services, tenant, principal, resource, action, at)
