"""The contract's event models (section 2), from the pure core, and their JSON Schema."""

from __future__ import annotations

from typing import Any

from permstore.core.events import (
    EVENT_ADAPTER,
    LATEST_TIME,
    RANGE_RULE,
    RFC3339_RE,
    RFC3339_RULE,
    Action,
    AddMemberEvent,
    DefineRoleEvent,
    DeleteRoleEvent,
    Event,
    EventBase,
    EventBatch,
    EventId,
    GrantEvent,
    Group,
    Permission,
    Principal,
    Reason,
    RemoveMemberEvent,
    Resource,
    ResourcePattern,
    RevokeEvent,
    RoleName,
    Tenant,
    Timestamp,
    event_to_dict,
    event_to_json,
    parse_event,
)

__all__ = [
    "EVENT_ADAPTER",
    "LATEST_TIME",
    "RANGE_RULE",
    "RFC3339_RE",
    "RFC3339_RULE",
    "Action",
    "AddMemberEvent",
    "DefineRoleEvent",
    "DeleteRoleEvent",
    "Event",
    "EventBase",
    "EventBatch",
    "EventId",
    "GrantEvent",
    "Group",
    "Permission",
    "Principal",
    "Reason",
    "RemoveMemberEvent",
    "Resource",
    "ResourcePattern",
    "RevokeEvent",
    "RoleName",
    "Tenant",
    "Timestamp",
    "event_json_schema",
    "event_to_dict",
    "event_to_json",
    "parse_event",
]


def event_json_schema() -> dict[str, Any]:
    """JSON Schema of one event, for publishers."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "permstore event"
    return schema
