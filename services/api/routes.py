"""HTTP routes: decode, call the reader and the pure core, encode. No rules live here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from permcore.consistency import (
    PROGRESS_KEY,
    LogPoint,
    MalformedTokenError,
    decode_token,
    encode_token,
)
from permcore.decisions import (
    Reason,
    decide_from_rows,
    decide_from_state,
    micros_to_rfc3339,
    reasons_from_sources,
    with_chains,
)
from permcore.identifiers import (
    ACTION_RULE,
    PRINCIPAL_RULE,
    RESOURCE_RULE,
    TENANT_RULE,
    is_action,
    is_member_principal,
    is_pattern,
    is_principal,
    is_resource,
    is_tenant,
)
from permcore.projector import to_micros
from permcore.state import NEVER
from schemas.events import EventBatch, Timestamp, event_to_json
from services.api import cursors
from services.api.audit import state_at
from services.api.deps import (
    AuditCaller,
    CheckCaller,
    Services,
    ServicesDep,
    WriteCaller,
    ensure_tenant,
)
from services.api.errors import ApiError, error_body
from services.api.middleware import DECISIONS
from services.api.models import (
    AuditCheckResponse,
    AuditEvent,
    AuditEventsPage,
    BatchCheckRequest,
    BatchCheckResponse,
    CheckRequest,
    CheckResponse,
    Consistency,
    ErrorResponse,
    EventsAccepted,
    PermissionItem,
    PermissionsPage,
    PrincipalItem,
    PrincipalsPage,
    ReasonModel,
    TenantFreshness,
)
from services.api.reader import ViewReader
from services.auth import Caller

router = APIRouter(prefix="/v1")
ALLOWED, DENIED = DECISIONS.labels("true"), DECISIONS.labels("false")


def error_example(summary: str, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A named OpenAPI example of the error body, built by the handlers' own error_body."""
    return {"summary": summary, "value": error_body(code, message, details)}


RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}

# Every error status a route may answer, with an example of each code it carries; the codes
# are the ones the handlers, dependencies and middleware really produce.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ErrorResponse,
        "description": text,
        "content": {"application/json": {"examples": cases}},
        **({"headers": headers} if headers else {}),
    }
    for status, text, cases, headers in (
        (
            400,
            "Malformed cursor or consistency token",
            {
                "invalid_cursor": error_example(
                    "A cursor this endpoint did not issue",
                    "invalid_cursor",
                    "cursor is not one this endpoint issued",
                    [
                        {
                            "field": "cursor",
                            "rule": "must be a next_cursor returned by this endpoint",
                        }
                    ],
                ),
                "invalid_token": error_example(
                    "A consistency token of another tenant or service",
                    "invalid_token",
                    "consistency token belongs to another tenant",
                    [
                        {
                            "field": "consistency.at_least",
                            "rule": "must be a token issued by this service",
                        }
                    ],
                ),
            },
            {},
        ),
        (
            401,
            "Missing, invalid or expired bearer token",
            {
                "unauthenticated": error_example(
                    "The bearer token has expired",
                    "unauthenticated",
                    "a valid bearer token is required (expired)",
                )
            },
            {"WWW-Authenticate": {"description": "Always Bearer", "schema": {"type": "string"}}},
        ),
        (
            403,
            "Outside the token's tenant or scopes",
            {
                "forbidden": error_example(
                    "The token is for another tenant",
                    "forbidden",
                    "this token may not do that (wrong_tenant)",
                )
            },
            {},
        ),
        (
            413,
            "Body over 4 MiB",
            {
                "too_large": error_example(
                    "The body is over 4 MiB", "too_large", "request body over 4 MiB", []
                )
            },
            {},
        ),
        (
            422,
            "Invalid input: each field and the rule it broke",
            {
                "invalid_request": error_example(
                    "A field breaks its rule",
                    "invalid_request",
                    "invalid input: principal",
                    [{"field": "principal", "rule": PRINCIPAL_RULE}],
                )
            },
            {},
        ),
        (
            429,
            "Rate limit of the token's subject exceeded",
            {
                "rate_limited": error_example(
                    "Too many requests", "rate_limited", "too many requests"
                )
            },
            RETRY_AFTER,
        ),
        (
            503,
            "Store or log unavailable, or consistency wait exceeded",
            {
                "unavailable": error_example(
                    "Cassandra or Kafka does not answer",
                    "unavailable",
                    "the permission store is unavailable; retry shortly",
                ),
                "consistency_timeout": error_example(
                    "The view did not reach consistency.at_least in time",
                    "consistency_timeout",
                    "the view has not applied the requested token within 5 s; retry later",
                    {"reached": "ps1.ODIyYjMzYWQ6MzoxMDM4"},
                ),
            },
            RETRY_AFTER,
        ),
    )
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: only the statuses it can really give."""
    return {status: ERRORS[status] for status in statuses}


# Statuses by kind of route: a body can be too large only where there is one, and only reads
# that take a cursor or a consistency token can find it malformed.
BODY_READ_ERRORS = errors(400, 401, 403, 413, 422, 429, 503)
WRITE_ERRORS = errors(401, 403, 413, 422, 429, 503)
PAGED_ERRORS = errors(400, 401, 403, 422, 429, 503)
READ_ERRORS = errors(401, 403, 422, 429, 503)

PAGING_TEXT = (
    "Paged: `limit` items a page (default 100, at most 1000); pass `next_cursor` as `cursor` "
    "until it is null to see every item exactly once."
)
SCOPE_TEXT = "Needs a bearer token for the tenant with the `{}` scope."

TenantPath = Annotated[str, Path(max_length=63, description="Tenant id", examples=["acme"])]
Limit = Annotated[
    int, Query(ge=1, le=1000, description="Page size (default 100, at most 1000)", examples=[100])
]


def cursor_query(example: str) -> Any:
    """The cursor parameter, with an example of the endpoint's own cursors."""
    return Query(
        max_length=4096,
        description="next_cursor of the previous page; omit for the first page",
        examples=[example],
    )


PermissionsCursor = Annotated[
    str | None, cursor_query("WyJwZXJtIiwiZG9jOmFjbWUvZW5nLyoiLCJyZWFkIl0")
]
PrincipalsCursor = Annotated[str | None, cursor_query("WyJ3aG8iLCJ1c2VyOmFsaWNlIiwicmVhZCJd")]
AuditCursor = Annotated[str | None, cursor_query("WyJhdWRpdCIsMTc2NzIyNTYwMDAwMDAwMCwxMDQxXQ")]


def now_micros() -> int:
    """Wall clock in epoch microseconds."""
    return time.time_ns() // 1000


async def with_membership_chains(
    reader: ViewReader, tenant: str, point: LogPoint, reason_lists: list[list[Reason]]
) -> list[list[Reason]]:
    """Each list (one principal's reasons) with the group chain of every group reason.

    Only reasons held through a group cost a read, so denials and direct grants stay one read.
    """
    principals = {r.principal for reasons in reason_lists for r in reasons if r.via_group}
    if not principals:
        return reason_lists
    paths = await reader.group_paths(tenant, principals, point)
    # Every list holds one principal's reasons; lists without a group reason are not in paths.
    return [
        with_chains(reasons, paths[reasons[0].principal])
        if reasons and reasons[0].principal in paths
        else reasons
        for reasons in reason_lists
    ]


def reason_models(reasons: list[Reason]) -> list[ReasonModel]:
    """Reasons as response models."""
    return [ReasonModel.model_validate(r.as_json()) for r in reasons]


def invalid(field: str, rule: str) -> ApiError:
    """A 422 naming one field and its rule."""
    return ApiError(
        422, "invalid_request", f"invalid input: {field}", [{"field": field, "rule": rule}]
    )


def require_valid(field: str, value: str, ok: bool, rule: str) -> str:
    """Return value, or raise 422 naming the field."""
    if not ok:
        raise invalid(field, rule)
    return value


async def view_point(
    reader: ViewReader, tenant: str, consistency: Consistency | None, bound: float
) -> LogPoint:
    """The point of the view a read uses, waiting (bounded) for at_least when asked."""
    if consistency is None:
        return await reader.position(tenant)
    try:
        wanted = decode_token(tenant, consistency.at_least)
    except MalformedTokenError as exc:
        raise ApiError(
            400,
            "invalid_token",
            str(exc),
            [{"field": "consistency.at_least", "rule": "must be a token issued by this service"}],
        ) from exc
    reached, point = await reader.wait_for(tenant, wanted, bound)
    if not reached:
        raise ApiError(
            503,
            "consistency_timeout",
            f"the view has not applied the requested token within {bound:g} s; retry later",
            {"reached": encode_token(tenant, point)},
            headers={"Retry-After": "1"},
        )
    return point


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
    return await answer_check(services, caller, body, request.url.path)


async def answer_check(
    services: Services, caller: Caller, body: CheckRequest, path: str
) -> Response:
    """The check answer for an authenticated caller holding the check scope."""
    ensure_tenant(caller, body.tenant, path)
    reader = services.reader
    point = await view_point(
        reader, body.tenant, body.consistency, services.settings.consistency_wait_seconds
    )
    rows = await reader.check_rows(body.tenant, body.principal, body.resource, body.action, point)
    reasons = decide_from_rows(body.principal, rows, now_micros())
    [reasons] = await with_membership_chains(reader, body.tenant, point, [reasons])
    count_decisions([reasons])
    return json_response(check_payload(encode_token(body.tenant, point), reasons))


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
    return await answer_batch(services, caller, body, request.url.path)


async def answer_batch(
    services: Services, caller: Caller, body: BatchCheckRequest, path: str
) -> Response:
    """The batch answer for an authenticated caller holding the check scope."""
    ensure_tenant(caller, body.tenant, path)
    reader = services.reader
    point = await view_point(
        reader, body.tenant, body.consistency, services.settings.consistency_wait_seconds
    )
    all_rows = await reader.check_rows_many(
        body.tenant, [(item.principal, item.resource, item.action) for item in body.checks], point
    )
    now = now_micros()
    decided = [
        decide_from_rows(item.principal, rows, now)
        for item, rows in zip(body.checks, all_rows, strict=True)
    ]
    answers = await with_membership_chains(reader, body.tenant, point, decided)
    count_decisions(answers)
    return json_response(batch_payload(encode_token(body.tenant, point), answers))


def count_decisions(answers: list[list[Reason]]) -> None:
    """Count allow and deny decisions (one increment per label per request)."""
    allowed = sum(1 for reasons in answers if reasons)
    if allowed:
        ALLOWED.inc(allowed)
    if allowed < len(answers):
        DENIED.inc(len(answers) - allowed)


def check_payload(token: str, reasons: list[Reason]) -> dict[str, object]:
    """The body of a check answer, shaped as CheckResponse."""
    return {"allowed": bool(reasons), "token": token, "reasons": [r.as_json() for r in reasons]}


def batch_payload(token: str, answers: list[list[Reason]]) -> dict[str, object]:
    """The body of a batch answer, shaped as BatchCheckResponse."""
    results = [
        {"allowed": bool(reasons), "reasons": [r.as_json() for r in reasons]} for reasons in answers
    ]
    return {"results": results, "token": token}


def json_response(payload: dict[str, object]) -> Response:
    """Serialize a hot-path answer directly: the declared response model documents its shape
    (tests hold the payload to it) without validating every answer again (~15% of a batch)."""
    return Response(orjson.dumps(payload), media_type="application/json")


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
    principal: Annotated[
        str,
        Path(
            max_length=140,
            description="user:<id>, service:<id> or group:<id>",
            examples=["user:alice"],
        ),
    ],
    caller: CheckCaller,
    services: ServicesDep,
    cursor: PermissionsCursor = None,
    limit: Limit = 100,
) -> PermissionsPage:
    """Every effective (resource pattern, action) the principal holds, with reasons."""
    require_valid("tenant", tenant, is_tenant(tenant), TENANT_RULE)
    require_valid("principal", principal, is_principal(principal), PRINCIPAL_RULE)
    after = cursors.decode_cursor("perm", cursor, 2) or ["", ""]
    reader = services.reader
    point = await reader.position(tenant)
    now = now_micros()
    found: list[tuple[str, str, list[Reason]]] = []
    exhausted = False
    last_key = (str(after[0]), str(after[1]))
    while len(found) < limit and not exhausted:
        rows = await reader.permissions_page(tenant, principal, last_key, limit + 1)
        exhausted = len(rows) < limit + 1
        for pattern, action, sources in rows:
            last_key = (pattern, action)
            reasons = reasons_from_sources(principal, pattern, (sources or {}).items(), now)
            if not reasons:
                continue
            if len(found) == limit:
                exhausted = False
                break
            found.append((pattern, action, reasons))
        else:
            continue
        break
    chained = await with_membership_chains(reader, tenant, point, [f[2] for f in found])
    items = [
        PermissionItem(
            resource=pattern,
            action=action,
            reasons=reason_models(reasons),
            expires_at=latest_expiry(reasons),
        )
        for (pattern, action, _), reasons in zip(found, chained, strict=True)
    ]
    next_cursor = None
    if not exhausted and items:
        next_cursor = cursors.encode_cursor("perm", [items[-1].resource, items[-1].action])
    return PermissionsPage(
        permissions=items, next_cursor=next_cursor, token=encode_token(tenant, point)
    )


def latest_expiry(reasons: list[Reason]) -> str | None:
    """When the permission lapses: None if any path never expires, else the latest expiry."""
    if any(r.expires == NEVER for r in reasons):
        return None
    return micros_to_rfc3339(max(r.expires for r in reasons))


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
        str | None,
        Query(max_length=64, description="Only this action", examples=["read"]),
    ] = None,
    cursor: PrincipalsCursor = None,
    limit: Limit = 100,
) -> PrincipalsPage:
    """Every user and service (expanded through groups) that may act on the resource."""
    require_valid("tenant", tenant, is_tenant(tenant), TENANT_RULE)
    if "*" in resource:
        raise invalid("resource", "who-can names a concrete resource, not a pattern")
    require_valid("resource", resource, is_resource(resource), RESOURCE_RULE)
    if action is not None:
        require_valid("action", action, is_action(action), ACTION_RULE)
    after = cursors.decode_cursor("who", cursor, 2) or ["", ""]
    reader = services.reader
    point = await reader.position(tenant)
    now = now_micros()
    found: list[tuple[str, str, list[Reason]]] = []
    key = (str(after[0]), str(after[1]))
    exhausted = False
    while len(found) < limit and not exhausted:
        rows = await reader.who_can_rows(tenant, resource, key, limit)
        if not rows:
            exhausted = True
            break
        grouped: dict[tuple[str, str], list[Reason]] = {}
        for principal, row_action, pattern, sources in rows:
            if not is_member_principal(principal) or (action and row_action != action):
                continue
            live = reasons_from_sources(principal, pattern, (sources or {}).items(), now)
            if live:
                grouped.setdefault((principal, row_action), []).extend(live)
        last_row_key = (rows[-1][0], rows[-1][1])
        for (principal, row_action), reasons in sorted(grouped.items()):
            if len(found) == limit:
                last_row_key = (found[-1][0], found[-1][1])
                break
            found.append((principal, row_action, reasons))
        key = last_row_key
    chained = await with_membership_chains(reader, tenant, point, [f[2] for f in found])
    items = [
        PrincipalItem(principal=principal, action=row_action, reasons=reason_models(reasons))
        for (principal, row_action, _), reasons in zip(found, chained, strict=True)
    ]
    next_cursor = None
    if not exhausted and items:
        next_cursor = cursors.encode_cursor("who", [items[-1].principal, items[-1].action])
    return PrincipalsPage(
        principals=items, next_cursor=next_cursor, token=encode_token(tenant, point)
    )


TIME_ADAPTER: TypeAdapter[datetime] = TypeAdapter(Timestamp)


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
    require_valid("tenant", tenant, is_tenant(tenant), TENANT_RULE)
    point, applied_at = await services.reader.freshness(tenant)
    _, progress_at = await services.reader.freshness(PROGRESS_KEY)
    return TenantFreshness(
        tenant=tenant,
        token=encode_token(tenant, point),
        applied_offset=point.offset,
        applied_at=micros_to_rfc3339(applied_at) if applied_at else None,
        age_seconds=(now_micros() - applied_at) / 1e6 if applied_at else None,
        processor_progress_age_seconds=(now_micros() - progress_at) / 1e6 if progress_at else None,
    )


def parse_time(field: str, value: str | None) -> datetime | None:
    """An RFC 3339 query parameter, or 422 naming it."""
    if value is None:
        return None
    try:
        parsed: datetime = TIME_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise invalid(field, "must be an RFC 3339 time with a timezone") from exc
    return parsed


def audit_subjects(principal: str | None, resource: str | None) -> list[str]:
    """Audit index keys for the filters; '*' (the whole log) when neither is given."""
    subjects = []
    if principal is not None:
        require_valid("principal", principal, is_principal(principal), PRINCIPAL_RULE)
        subjects.append(f"p:{principal}")
    if resource is not None:
        require_valid(
            "resource", resource, is_pattern(resource), "resource must be a resource or pattern"
        )
        subjects.append(f"r:{resource}")
    return subjects


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
        str | None,
        Query(
            max_length=140,
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
    require_valid("tenant", tenant, is_tenant(tenant), TENANT_RULE)
    subjects = audit_subjects(principal, resource)
    start, end = parse_time("from", from_), parse_time("to", to)
    after_key = cursors.decode_cursor("audit", cursor, 2, int)
    after = (int(after_key[0]), int(after_key[1])) if after_key else (-1, -1)
    if start is not None:
        after = max(after, (to_micros(start) - 1, 2**62))
    until = to_micros(end) if end is not None else 2**62
    reader = services.reader
    months = await reader.months(tenant)
    if subjects:
        rows = await reader.audit_page(tenant, subjects, after, until, limit + 1, months)
    else:
        rows = []
        for month in months:
            rows.extend(await reader.log_page(tenant, month, after, until, limit + 1 - len(rows)))
            if len(rows) > limit:
                break
    more = len(rows) > limit
    rows = rows[:limit]
    events = [
        AuditEvent(
            event=orjson.loads(row.event),
            recorded_at=micros_to_rfc3339(row.recorded_at) or "",
            position=row.offset,
        )
        for row in rows
    ]
    next_cursor = (
        cursors.encode_cursor("audit", [rows[-1].recorded_at, rows[-1].offset]) if more else None
    )
    return AuditEventsPage(events=events, next_cursor=next_cursor)


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
        str,
        Query(
            max_length=140,
            description="user:<id>, service:<id> or group:<id>",
            examples=["user:alice"],
        ),
    ],
    resource: Annotated[
        str,
        Query(
            max_length=2200,
            description="A concrete resource, <type>:<path>",
            examples=["doc:acme/eng/spec-1"],
        ),
    ],
    action: Annotated[str, Query(max_length=64, description="The action", examples=["read"])],
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
    require_valid("tenant", tenant, is_tenant(tenant), TENANT_RULE)
    require_valid("principal", principal, is_principal(principal), PRINCIPAL_RULE)
    if "*" in resource:
        raise invalid("resource", "a check names a concrete resource, not a pattern")
    require_valid("resource", resource, is_resource(resource), RESOURCE_RULE)
    require_valid("action", action, is_action(action), ACTION_RULE)
    moment = parse_time("at", at)
    assert moment is not None
    at_us = to_micros(moment)
    state, replayed = await state_at(services.reader, tenant, at_us)
    reasons = decide_from_state(state, principal, resource, action, at_us)
    return AuditCheckResponse(
        allowed=bool(reasons),
        reasons=reason_models(reasons),
        at=moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        replayed_events=replayed,
    )
