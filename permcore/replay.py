"""State-only fold for past points in time: no view fan-out, just the projector's state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .events import Event
from .projector import to_micros
from .state import TenantState


def fold_event(state: TenantState, event: Event) -> None:
    """Apply one (already de-duplicated) event to state without computing view changes."""
    fold_fields(state, event.type, event.__dict__)


def fold_fields(state: TenantState, kind: str, fields: Mapping[str, Any]) -> None:
    """fold_event on an event's fields, as a model's attributes or as its recorded JSON.

    Point-in-time replays read events that were validated when they were applied, so they
    fold the JSON directly instead of paying for validation again.
    """
    match kind:
        case "grant":
            expires = fields.get("expires_at")
            if isinstance(expires, str):
                expires = datetime.fromisoformat(expires)
            state.set_grant(
                fields["principal"], fields["resource"], fields["permission"], to_micros(expires)
            )
        case "revoke":
            state.delete_grant(fields["principal"], fields["resource"], fields["permission"])
        case "add_member":
            state.add_member(fields["group"], fields["member"])
        case "remove_member":
            state.remove_member(fields["group"], fields["member"])
        case "define_role":
            state.roles[fields["role"]] = frozenset(fields["actions"])
        case "delete_role":
            state.roles.pop(fields["role"], None)


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
    import orjson  # lazy: only snapshots need it, so the client kit ships permcore without it

    return orjson.dumps(body)


def load_snapshot(blob: bytes) -> TenantState:
    """Inverse of dump_state."""
    import orjson

    body = orjson.loads(blob)
    state = TenantState(applied_offset=int(body["offset"]))
    for subject, pattern, permission, expires in body["grants"]:
        state.set_grant(subject, pattern, permission, int(expires))
    for group, member in body["members"]:
        state.add_member(group, member)
    for role, actions in body["roles"].items():
        state.roles[role] = frozenset(actions)
    return state
