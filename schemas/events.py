"""Pydantic models of the events upstream systems publish (contract section 2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
)

from permcore import identifiers as ids


def _grammar(check: Callable[[str], bool], rule: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not check(value):
            raise ValueError(rule)
        return value

    return AfterValidator(validate)


RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
RFC3339_RULE = "must be an RFC 3339 time such as 2026-01-01T00:00:00Z"


def _require_rfc3339(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or RFC3339_RE.fullmatch(value) is None:
        raise ValueError(RFC3339_RULE)
    return value


# The latest time every part of the service can represent and render (Python's datetime ends
# in year 9999; a later UTC instant, or a sub-second one in its last second, breaks rendering).
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
RANGE_RULE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def _require_in_range(value: datetime) -> datetime:
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(RANGE_RULE) from None
    if in_utc > LATEST_TIME:
        raise ValueError(RANGE_RULE)
    return value


def _rfc3339(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


Tenant = Annotated[str, Field(max_length=63), _grammar(ids.is_tenant, ids.TENANT_RULE)]
Principal = Annotated[str, Field(max_length=140), _grammar(ids.is_principal, ids.PRINCIPAL_RULE)]
Group = Annotated[str, Field(max_length=140), _grammar(ids.is_group, ids.GROUP_RULE)]
Resource = Annotated[str, Field(max_length=2200), _grammar(ids.is_resource, ids.RESOURCE_RULE)]
ResourcePattern = Annotated[str, Field(max_length=2200), _grammar(ids.is_pattern, ids.PATTERN_RULE)]
Action = Annotated[str, Field(max_length=64), _grammar(ids.is_action, ids.ACTION_RULE)]
RoleName = Annotated[str, Field(max_length=64), _grammar(ids.is_role_name, ids.ROLE_RULE)]
Permission = Annotated[str, Field(max_length=70), _grammar(ids.is_permission, ids.PERMISSION_RULE)]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_require_rfc3339),
    AfterValidator(_require_in_range),
    PlainSerializer(_rfc3339, return_type=str),
]
EventId = Annotated[str, Field(min_length=1, max_length=128)]
Reason = Annotated[str, Field(max_length=1024)]


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: EventId = Field(description="Unique per tenant; a repeated id is ignored.")
    tenant: Tenant
    actor: Principal = Field(description="The principal that caused the change, for audit.")
    occurred_at: Timestamp = Field(description="RFC 3339 time at the source (informational).")
    reason: Reason | None = Field(default=None, description="Ticket or justification.")


class GrantEvent(EventBase):
    """The grant (principal, resource pattern, permission) exists, with an optional expiry."""

    type: Literal["grant"]
    principal: Principal
    resource: ResourcePattern
    permission: Permission
    expires_at: Timestamp | None = None


class RevokeEvent(EventBase):
    """Removes the grant with exactly this triple."""

    type: Literal["revoke"]
    principal: Principal
    resource: ResourcePattern
    permission: Permission


class AddMemberEvent(EventBase):
    """Member (any principal) belongs to group."""

    type: Literal["add_member"]
    group: Group
    member: Principal


class RemoveMemberEvent(EventBase):
    """Member no longer belongs to group directly."""

    type: Literal["remove_member"]
    group: Group
    member: Principal


class DefineRoleEvent(EventBase):
    """Role name means exactly these actions."""

    type: Literal["define_role"]
    role: RoleName
    actions: Annotated[list[Action], Field(min_length=1, max_length=256)]


class DeleteRoleEvent(EventBase):
    """Role name means no actions."""

    type: Literal["delete_role"]
    role: RoleName


Event = Annotated[
    GrantEvent
    | RevokeEvent
    | AddMemberEvent
    | RemoveMemberEvent
    | DefineRoleEvent
    | DeleteRoleEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventBatch(BaseModel):
    """Body of POST /v1/events: 1-500 events of one tenant."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[Event], Field(min_length=1, max_length=500)]


def parse_event(raw: bytes | str) -> Event:
    """Parse and validate one JSON event; raises pydantic.ValidationError."""
    return EVENT_ADAPTER.validate_json(raw)


def event_to_json(event: Event) -> bytes:
    """Canonical JSON of an event, as recorded in the log."""
    return EVENT_ADAPTER.dump_json(event, exclude_none=True)


def event_to_dict(event: Event) -> dict[str, Any]:
    """JSON-compatible dict of an event."""
    result: dict[str, Any] = EVENT_ADAPTER.dump_python(event, mode="json", exclude_none=True)
    return result


def event_json_schema() -> dict[str, Any]:
    """JSON Schema of one event, for publishers."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "permstore event"
    return schema
