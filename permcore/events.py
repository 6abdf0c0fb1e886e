"""The domain's event models (contract section 2): pydantic, validated by permcore's grammar.

They live in the pure core so the projector depends on nothing outside permcore; `schemas.events`
re-exports them as the contract's home and generates the JSON Schema.
"""

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

from . import identifiers as ids


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


# Example events of one scenario, shared by the model examples and the batch example: acme's
# engineering group gets read on its specs, alice joins it through group:backend and holds
# the editor role on one spec directly. Every id is distinct because a repeated event_id in a
# tenant is ignored, so a client replaying the examples would otherwise lose one.
_DEFINE_EDITOR: dict[str, Any] = {
    "event_id": "evt-2026-0100",
    "tenant": "acme",
    "type": "define_role",
    "actor": "user:admin",
    "occurred_at": "2026-01-05T09:00:00Z",
    "role": "editor",
    "actions": ["read", "write", "comment"],
}
_ALICE_IN_BACKEND: dict[str, Any] = {
    "event_id": "evt-2026-0101",
    "tenant": "acme",
    "type": "add_member",
    "actor": "service:hr-sync",
    "occurred_at": "2026-01-05T09:30:00Z",
    "group": "group:backend",
    "member": "user:alice",
}
_BACKEND_IN_ENG: dict[str, Any] = {
    "event_id": "evt-2026-0102",
    "tenant": "acme",
    "type": "add_member",
    "actor": "service:hr-sync",
    "occurred_at": "2026-01-05T09:30:01Z",
    "group": "group:eng",
    "member": "group:backend",
}
_ENG_READS_SPECS: dict[str, Any] = {
    "event_id": "evt-2026-0103",
    "tenant": "acme",
    "type": "grant",
    "actor": "user:admin",
    "occurred_at": "2026-01-05T10:00:00Z",
    "reason": "SEC-1423: engineering reads its specs until the mid-year review",
    "principal": "group:eng",
    "resource": "doc:acme/eng/*",
    "permission": "read",
    "expires_at": "2026-06-30T00:00:00Z",
}
_ALICE_EDITS_SPEC: dict[str, Any] = {
    "event_id": "evt-2026-0104",
    "tenant": "acme",
    "type": "grant",
    "actor": "user:admin",
    "occurred_at": "2026-01-05T10:05:00Z",
    "principal": "user:alice",
    "resource": "doc:acme/eng/spec-1",
    "permission": "role:editor",
}


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: EventId = Field(description="Unique per tenant; a repeated id is ignored.")
    tenant: Tenant = Field(
        description="The tenant the event belongs to; also the Kafka record key."
    )
    actor: Principal = Field(description="The principal that caused the change, for audit.")
    occurred_at: Timestamp = Field(description="RFC 3339 time at the source (informational).")
    reason: Reason | None = Field(default=None, description="Ticket or justification.")


class GrantEvent(EventBase):
    """The grant (principal, resource pattern, permission) exists, with an optional expiry.

    Granting the same triple again only replaces its expiry.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_ENG_READS_SPECS, _ALICE_EDITS_SPEC]})

    type: Literal["grant"] = Field(description="Always `grant` for this event.")
    principal: Principal = Field(description="The user, service or group that is granted.")
    resource: ResourcePattern = Field(
        description="A resource, `<type>:<path>/*` for everything under a path, or `<type>:*`."
    )
    permission: Permission = Field(
        description="An action, or `role:<name>` for every action of that role."
    )
    expires_at: Timestamp | None = Field(
        default=None, description="RFC 3339 time the grant stops conferring; absent for never."
    )


class RevokeEvent(EventBase):
    """Removes the grant with exactly this triple; revoking a missing grant is only recorded."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "evt-2026-0200",
                    "tenant": "acme",
                    "type": "revoke",
                    "actor": "user:admin",
                    "occurred_at": "2026-03-01T16:45:00Z",
                    "reason": "SEC-1502: spec-1 handed over to the platform team",
                    "principal": "user:alice",
                    "resource": "doc:acme/eng/spec-1",
                    "permission": "role:editor",
                }
            ]
        }
    )

    type: Literal["revoke"] = Field(description="Always `revoke` for this event.")
    principal: Principal = Field(description="Principal of the grant to remove.")
    resource: ResourcePattern = Field(
        description="Resource pattern of the grant to remove, exactly as it was granted."
    )
    permission: Permission = Field(description="Permission of the grant to remove.")


class AddMemberEvent(EventBase):
    """Member (any principal, groups included) belongs to group; cycles are harmless."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ALICE_IN_BACKEND, _BACKEND_IN_ENG]})

    type: Literal["add_member"] = Field(description="Always `add_member` for this event.")
    group: Group = Field(description="The group that gains a member.")
    member: Principal = Field(description="The user, service or group that joins.")


class RemoveMemberEvent(EventBase):
    """Member no longer belongs to group directly; removing a non-member is only recorded."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "evt-2026-0300",
                    "tenant": "acme",
                    "type": "remove_member",
                    "actor": "service:hr-sync",
                    "occurred_at": "2026-04-10T08:00:00Z",
                    "reason": "HR-7781: moved to the sales department",
                    "group": "group:eng",
                    "member": "user:alice",
                }
            ]
        }
    )

    type: Literal["remove_member"] = Field(description="Always `remove_member` for this event.")
    group: Group = Field(description="The group that loses a direct member.")
    member: Principal = Field(description="The user, service or group that leaves.")


class DefineRoleEvent(EventBase):
    """Role name means exactly these actions; defining it again replaces the set."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DEFINE_EDITOR]})

    type: Literal["define_role"] = Field(description="Always `define_role` for this event.")
    role: RoleName = Field(description="Name of the role, granted as `role:<name>`.")
    actions: Annotated[list[Action], Field(min_length=1, max_length=256)] = Field(
        description="The 1-256 actions a grant of the role confers."
    )


class DeleteRoleEvent(EventBase):
    """Role name means no actions; its grants stay and confer again if it is redefined."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "evt-2026-0400",
                    "tenant": "acme",
                    "type": "delete_role",
                    "actor": "user:admin",
                    "occurred_at": "2026-05-20T12:00:00+02:00",
                    "reason": "editing moves to the new review workflow",
                    "role": "editor",
                }
            ]
        }
    )

    type: Literal["delete_role"] = Field(description="Always `delete_role` for this event.")
    role: RoleName = Field(description="Name of the role that stops conferring actions.")


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
    """Body of POST /v1/events: 1-500 events of one tenant, accepted all or none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        _DEFINE_EDITOR,
                        _ALICE_IN_BACKEND,
                        _BACKEND_IN_ENG,
                        _ENG_READS_SPECS,
                        _ALICE_EDITS_SPEC,
                    ]
                }
            ]
        },
    )

    events: Annotated[list[Event], Field(min_length=1, max_length=500)] = Field(
        description="The events, in the order they are to be applied; all name one tenant."
    )


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
