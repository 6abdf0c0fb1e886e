"""The read use cases, once: check (with membership chains), batch, permission list, who-can,
freshness, audit events and point in time. The routes and the check fast lane both call them;
errors are ApiErrors, mapped to answers at the edge."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from fastapi import Response
from pydantic import TypeAdapter, ValidationError

from permstore.adapters.cassandra_layout.encodings import principal_subject, resource_subject
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.core.consistency import (
    PROGRESS_KEY,
    LogPoint,
    MalformedTokenError,
    decode_token,
    encode_token,
)
from permstore.core.decisions import (
    Reason,
    decide_from_rows,
    decide_from_state,
    micros_to_rfc3339,
    reasons_from_sources,
    with_chains,
)
from permstore.core.identifiers import is_member_principal
from permstore.core.projector import to_micros
from permstore.core.state import NEVER
from permstore.schemas.events import Action, Principal, Resource, ResourcePattern, Timestamp
from permstore.services.api import cursors
from permstore.services.api.audit import state_at
from permstore.services.api.deps import (
    Services,
    ensure_tenant,
)
from permstore.services.api.errors import ApiError, rule_of
from permstore.services.api.middleware import DECISIONS
from permstore.services.api.models import (
    AuditCheckResponse,
    AuditEvent,
    AuditEventsPage,
    BatchCheckRequest,
    CheckRequest,
    Consistency,
    PermissionItem,
    PermissionsPage,
    PrincipalItem,
    PrincipalsPage,
    ReasonModel,
    TenantFreshness,
)
from permstore.services.auth import Caller

ALLOWED, DENIED = DECISIONS.labels("true"), DECISIONS.labels("false")


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


# The event models' annotated types, for identifiers that reach a use case as plain strings
# (the routes' path and query parameters carry the same types and are checked on decoding).
PRINCIPAL_ID: TypeAdapter[str] = TypeAdapter(Principal)
RESOURCE_ID: TypeAdapter[str] = TypeAdapter(Resource)
PATTERN_ID: TypeAdapter[str] = TypeAdapter(ResourcePattern)
ACTION_ID: TypeAdapter[str] = TypeAdapter(Action)


def require_valid(field: str, kind: TypeAdapter[str], value: str) -> str:
    """Return value if the identifier type accepts it, else raise 422 naming the field and rule."""
    try:
        return kind.validate_python(value)
    except ValidationError as exc:
        raise invalid(field, rule_of(exc.errors()[0])) from exc


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
    if services.usage is not None:
        services.usage.record(body.tenant, [body], [reasons])
    return json_response(check_payload(encode_token(body.tenant, point), reasons))


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
    if services.usage is not None:
        services.usage.record(body.tenant, body.checks, answers)
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


def latest_expiry(reasons: list[Reason]) -> str | None:
    """When the permission lapses: None if any path never expires, else the latest expiry."""
    if any(r.expires == NEVER for r in reasons):
        return None
    return micros_to_rfc3339(max(r.expires for r in reasons))


TIME_ADAPTER: TypeAdapter[datetime] = TypeAdapter(Timestamp)


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
        subjects.append(principal_subject(principal))
    if resource is not None:
        subjects.append(resource_subject(require_valid("resource", PATTERN_ID, resource)))
    return subjects


async def permissions_page(
    services: Services, tenant: str, principal: str, cursor: str | None, limit: int
) -> PermissionsPage:
    """Every effective (resource pattern, action) the principal holds, with reasons."""
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


async def who_can(
    services: Services,
    tenant: str,
    resource: str,
    action: str | None,
    cursor: str | None,
    limit: int,
) -> PrincipalsPage:
    """Every user and service (expanded through groups) that may act on the resource."""
    if "*" in resource:
        raise invalid("resource", "who-can names a concrete resource, not a pattern")
    require_valid("resource", RESOURCE_ID, resource)
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


async def freshness(services: Services, tenant: str) -> TenantFreshness:
    """The newest event applied to the tenant's views and how long ago that was."""
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


async def audit_events(
    services: Services,
    tenant: str,
    principal: str | None,
    resource: str | None,
    from_: str | None,
    to: str | None,
    cursor: str | None,
    limit: int,
) -> AuditEventsPage:
    """Recorded events naming the principal (as principal, group or member) or the resource."""
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


async def audit_check(
    services: Services, tenant: str, principal: str, resource: str, action: str, at: str
) -> AuditCheckResponse:
    """The answer contract section 3 gives at a past time, by replaying the log up to it."""
    if "*" in resource:
        raise invalid("resource", "a check names a concrete resource, not a pattern")
    require_valid("resource", RESOURCE_ID, resource)
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
