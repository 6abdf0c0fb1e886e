"""The console's one door into the read and write use cases of the API.

Every page goes through these functions, which call the use cases the HTTP routes use
(services/api/routes.py), so the console gives the same answers and refusals as the API.
When those use cases move (query services), only this module is re-pointed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from pydantic import ValidationError

from permcore.consistency import MalformedTokenError, decode_token
from schemas.events import EventBatch
from services.api import routes
from services.api.deps import Services
from services.api.errors import ApiError, field_path
from services.api.models import (
    AuditCheckResponse,
    AuditEventsPage,
    CheckRequest,
    PermissionsPage,
    PrincipalsPage,
)
from services.auth import Caller
from services.console.directory import Directory, directory_for


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


async def permissions(
    services: Services, caller: Caller, tenant: str, principal: str, cursor: str | None, limit: int
) -> PermissionsPage:
    """A page of the principal's effective permissions with reasons (as GET .../permissions)."""
    try:
        return await routes.list_permissions(tenant, principal, caller, services, cursor, limit)
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
        response = await routes.answer_check(services, caller, body, "/console/can")
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
    try:
        return await routes.who_can(tenant, resource, caller, services, action, cursor, limit)
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
    try:
        return await routes.audit_events(
            tenant, caller, services, principal, resource, start, end, cursor, limit
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
    try:
        return await routes.audit_check(tenant, caller, services, principal, resource, action, at)
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


# Usage and unused-access findings (contract section 7) are built by another service; until
# it is wired into this build these answer None and the pages say the data is not available.
# The merger points them at that service's use cases; the shapes below are the contract's.


async def unused_findings(
    services: Services, caller: Caller, tenant: str, days: int, kind: str | None
) -> dict[str, Any] | None:
    """The unused-access findings page ({findings, next_cursor, as_of}), or None if absent."""
    return None


async def usage(
    services: Services, caller: Caller, tenant: str, principal: str
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """(resource, action) -> {last_used_at, uses} of the principal, or None if absent."""
    return None
