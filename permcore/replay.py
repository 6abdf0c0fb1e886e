"""State-only fold for past points in time: no view fan-out, just the projector's state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from permcore.projector import to_micros
from permcore.state import TenantState
from schemas.events import (
    AddMemberEvent,
    DefineRoleEvent,
    DeleteRoleEvent,
    Event,
    GrantEvent,
    RemoveMemberEvent,
    RevokeEvent,
)


def fold_event(state: TenantState, event: Event) -> None:
    """Apply one (already de-duplicated) event to state without computing view changes."""
    match event:
        case GrantEvent():
            state.set_grant(
                event.principal, event.resource, event.permission, to_micros(event.expires_at)
            )
        case RevokeEvent():
            state.delete_grant(event.principal, event.resource, event.permission)
        case AddMemberEvent():
            state.add_member(event.group, event.member)
        case RemoveMemberEvent():
            state.remove_member(event.group, event.member)
        case DefineRoleEvent():
            state.roles[event.role] = frozenset(event.actions)
        case DeleteRoleEvent():
            state.roles.pop(event.role, None)


def dump_state(state: TenantState) -> bytes:
    """Serialize a state for a snapshot."""
    body: dict[str, Any] = {
        "offset": state.applied_offset,
        "grants": [
            [subject, pattern, permission, expires]
            for subject, held in state.grants.items()
            for (pattern, permission), expires in held.items()
        ],
        "members": [[group, member] for group, ms in state.members.items() for member in ms],
        "roles": {role: sorted(actions) for role, actions in state.roles.items()},
    }
    return orjson.dumps(body)


def load_snapshot(blob: bytes) -> TenantState:
    """Inverse of dump_state."""
    body = orjson.loads(blob)
    state = TenantState(applied_offset=int(body["offset"]))
    for subject, pattern, permission, expires in body["grants"]:
        state.set_grant(subject, pattern, permission, int(expires))
    for group, member in body["members"]:
        state.add_member(group, member)
    for role, actions in body["roles"].items():
        state.roles[role] = frozenset(actions)
    return state


def month_of(recorded_at_us: int) -> int:
    """The yyyymm bucket of a recorded time (epoch microseconds)."""
    moment = datetime.fromtimestamp(recorded_at_us / 1_000_000, UTC)
    return moment.year * 100 + moment.month
