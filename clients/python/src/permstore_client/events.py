"""The event models (contract section 2), the very ones the permstore processor validates with."""

from permstore_client._core.events import (
    AddMemberEvent,
    DefineRoleEvent,
    DeleteRoleEvent,
    Event,
    EventBatch,
    GrantEvent,
    RemoveMemberEvent,
    RevokeEvent,
    event_to_dict,
    parse_event,
)

__all__ = [
    "AddMemberEvent",
    "DefineRoleEvent",
    "DeleteRoleEvent",
    "Event",
    "EventBatch",
    "GrantEvent",
    "RemoveMemberEvent",
    "RevokeEvent",
    "event_to_dict",
    "parse_event",
]
