"""The console's one door into the read and write use cases of the API.

Every page goes through these functions, which call the same use cases as the HTTP routes
(services/api/queries.py; events through the route's own post_events), so the console gives
the same answers as the API. The console authorizes each page itself (scope and tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from fastapi import Request
from pydantic import TypeAdapter, ValidationError

from permstore.adapters.cassandra_layout.directory import Directory, directory_for
from permstore.core.consistency import MalformedTokenError, decode_token
from permstore.core.findings import FINDING_KINDS
from permstore.schemas.events import EventBatch
from permstore.services.api import findings_routes, routes
from permstore.services.api import queries as api_queries
from permstore.services.api.deps import Services
from permstore.services.api.errors import ApiError, field_path
from permstore.services.api.models import (
    AuditCheckResponse,
    AuditEventsPage,
    CheckRequest,
    PermissionsPage,
    PrincipalsPage,
)
from permstore.services.auth import Caller, Scope


class InvalidInputError(Exception):
    """Input the API rules refuse: field name -> rule, shown next to each form field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def _field_errors(exc: ApiError | ValidationError) -> InvalidInputError:
    found: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for item in exc.errors():
            name = field_path(tuple(item["loc"])).removeprefix("events[0].").split("[")[0]
            found.setdefault(name or "form", str(item["msg"]).removeprefix("Value error, "))
    elif isinstance(exc.details, list):
        for detail in exc.details:
            found.setdefault(str(detail.get("field", "form")), str(detail.get("rule", "")))
    if not found:
        found["form"] = exc.message if isinstance(exc, ApiError) else str(exc)
    return InvalidInputError(found)


def _require_identifiers(fields: dict[str, tuple[TypeAdapter[str], str | None]]) -> None:
    """Refuse form values the API's parameter types refuse (each field's rule, all at once)."""
    found: dict[str, str] = {}
    for name, (kind, value) in fields.items():
        if value is None:
            continue
        try:
            api_queries.require_valid(name, kind, value)
        except ApiError as exc:
            found.update(_field_errors(exc).errors)
    if found:
        raise InvalidInputError(found)


async def permissions(
    services: Services, caller: Caller, tenant: str, principal: str, cursor: str | None, limit: int
) -> PermissionsPage:
    """A page of the principal's effective permissions with reasons (as GET .../permissions)."""
    _require_identifiers({"principal": (api_queries.PRINCIPAL_ID, principal)})
    try:
        return await api_queries.permissions_page(services, tenant, principal, cursor, limit)
    except ApiError as exc:
        raise _field_errors(exc) from exc


async def check(
    services: Services, caller: Caller, tenant: str, principal: str, resource: str, action: str
) -> dict[str, Any]:
    """The check answer ({allowed, reasons, token}) of POST /v1/check."""
    try:
        body = CheckRequest.model_validate(
            {"tenant": tenant, "principal": principal, "resource": resource, "action": action}
        )
        response = await api_queries.answer_check(services, caller, body, "/console/can")
    except (ApiError, ValidationError) as exc:
        raise _field_errors(exc) from exc
    answer: dict[str, Any] = orjson.loads(bytes(response.body))
    return answer


async def who_can(
    services: Services,
    caller: Caller,
    tenant: str,
    resource: str,
    action: str | None,
    cursor: str | None,
    limit: int,
) -> PrincipalsPage:
    """A page of who may act on the resource (as GET .../resources/{r}/principals)."""
    _require_identifiers({"action": (api_queries.ACTION_ID, action)})
    try:
        return await api_queries.who_can(services, tenant, resource, action, cursor, limit)
    except ApiError as exc:
        raise _field_errors(exc) from exc


async def audit_events(
    services: Services,
    caller: Caller,
    tenant: str,
    *,
    principal: str | None,
    resource: str | None,
    start: str | None,
    end: str | None,
    cursor: str | None,
    limit: int,
) -> AuditEventsPage:
    """A page of the audit timeline (as GET .../audit/events)."""
    _require_identifiers({"principal": (api_queries.PRINCIPAL_ID, principal)})
    try:
        return await api_queries.audit_events(
            services, tenant, principal, resource, start, end, cursor, limit
        )
    except ApiError as exc:
        raise _field_errors(exc) from exc


async def audit_check(
    services: Services,
    caller: Caller,
    tenant: str,
    principal: str,
    resource: str,
    action: str,
    at: str,
) -> AuditCheckResponse:
    """The point-in-time answer (as GET .../audit/check)."""
    _require_identifiers(
        {
            "principal": (api_queries.PRINCIPAL_ID, principal),
            "action": (api_queries.ACTION_ID, action),
        }
    )
    try:
        return await api_queries.audit_check(services, tenant, principal, resource, action, at)
    except ApiError as exc:
        raise _field_errors(exc) from exc


def directory(services: Services) -> Directory:
    """Membership and role reads of the serving generation."""
    return directory_for(services.reader, services.settings.cassandra_keyspace)


async def groups_of(services: Services, tenant: str, principal: str) -> dict[str, str]:
    """Every group the principal reaches -> the member its shortest path enters it by."""
    point = await services.reader.position(tenant)
    return (await services.reader.group_paths(tenant, [principal], point)).get(principal, {})


@dataclass(frozen=True)
class Published:
    """A change the log acknowledged, and whether the views applied it within the bound."""

    event_id: str
    token: str
    applied: bool


def validation_errors(event: dict[str, Any]) -> dict[str, str]:
    """What the API's rules say about one event, field by field (empty when valid)."""
    try:
        EventBatch.model_validate({"events": [event]})
    except ValidationError as exc:
        return _field_errors(exc).errors
    return {}


async def publish(
    request: Request, services: Services, caller: Caller, event: dict[str, Any]
) -> Published:
    """Validate one event with the API's rules and append it as POST /v1/events does."""
    try:
        batch = EventBatch.model_validate({"events": [event]})
        accepted = await routes.post_events(request, batch, caller, services)
    except (ApiError, ValidationError) as exc:
        raise _field_errors(exc) from exc
    tenant = batch.events[0].tenant
    try:
        wanted = decode_token(tenant, accepted.token)
    except MalformedTokenError:  # pragma: no cover - the token was just made for this tenant
        return Published(batch.events[0].event_id, accepted.token, False)
    applied, _ = await services.reader.wait_for(
        tenant, wanted, services.settings.consistency_wait_seconds
    )
    return Published(batch.events[0].event_id, accepted.token, applied)


USAGE_PAGE = 1000
FindingKind = Literal["grant", "membership", "role_action"]
USAGE_PAGES = 20


async def unused_findings(
    request: Request, services: Services, caller: Caller, tenant: str, days: int, kind: str | None
) -> dict[str, Any] | None:
    """The unused-access findings page ({findings, next_cursor, as_of}), as GET .../unused."""
    if caller.denial_reason(tenant, Scope.AUDIT) is not None:
        return None
    chosen = cast(FindingKind, kind) if kind in FINDING_KINDS else None
    try:
        page = await findings_routes.unused(
            request,
            tenant,
            caller,
            services,
            days,
            chosen,
            None,
            USAGE_PAGE,
        )
    except ApiError as exc:
        raise _field_errors(exc) from exc
    return page.model_dump(mode="json")


async def usage(
    request: Request, services: Services, caller: Caller, tenant: str, principal: str
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """(resource, action) -> {last_used_at, uses} of the principal; None without `audit`."""
    if caller.denial_reason(tenant, Scope.AUDIT) is not None:
        return None
    found: dict[tuple[str, str], dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(USAGE_PAGES):
        try:
            page = await findings_routes.principal_usage(
                request, tenant, principal, caller, services, 90, cursor, USAGE_PAGE
            )
        except ApiError as exc:
            raise _field_errors(exc) from exc
        for item in page.permissions:
            found[(item.resource, item.action)] = {
                "last_used_at": item.last_used_at,
                "uses": item.uses,
            }
        cursor = page.next_cursor
        if cursor is None:
            break
    return found
