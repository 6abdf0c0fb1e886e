"""Reference evaluator of contract v1, section 3 ("What a permission means").

Deliberately naive: it replays the log from the start on every question, keeps
no cache and shares no code with the project (standard library only). It exists
to be compared with the real projector and reader in tests.

Input: a list of ``(event, recorded_at)`` pairs in log order. ``event`` is a
plain contract JSON object (section 2) as a ``dict``; times inside it
(``occurred_at``, ``expires_at``) are RFC 3339 strings. ``recorded_at`` is a
timezone-aware ``datetime`` (the Kafka LogAppendTime).

Readings taken where the contract is not explicit:

* ``define_role`` / ``delete_role``: the ``role`` field may be written either
  ``role:editor`` or ``editor``; both name the role that a grant of the
  permission ``role:editor`` refers to.
* ``"expires_at": null`` and ``"reason": null`` are treated as absent.
* Duplicate ``event_id``: the later event in log order (same tenant) is
  ignored entirely, whatever its content.
* Events must be valid (``validate_event``); the model refuses invalid ones
  (they would go to the dead-letter topic and never be applied).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

Event = dict[str, Any]
Record = tuple[Event, datetime]

# --------------------------------------------------------------------------
# Section 1: identifiers
# --------------------------------------------------------------------------

TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PRINCIPAL_ID_RE = re.compile(r"[A-Za-z0-9._@-]{1,128}")
PRINCIPAL_KINDS = ("user", "service", "group")
RESOURCE_TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SEGMENT_RE = re.compile(r"[A-Za-z0-9._@-]{1,128}")
MAX_SEGMENTS = 16
ACTION_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
ROLE_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
EVENT_TYPES = ("grant", "revoke", "add_member", "remove_member", "define_role", "delete_role")
MAX_EVENT_ID_CHARS = 128
MAX_REASON_CHARS = 1024
MAX_ROLE_ACTIONS = 256


def is_tenant(value: object) -> bool:
    return isinstance(value, str) and TENANT_RE.fullmatch(value) is not None


def is_principal(value: object) -> bool:
    if not isinstance(value, str):
        return False
    kind, sep, ident = value.partition(":")
    if sep != ":":
        return False
    if kind not in PRINCIPAL_KINDS:
        return False
    return PRINCIPAL_ID_RE.fullmatch(ident) is not None


def is_group(value: object) -> bool:
    return is_principal(value) and isinstance(value, str) and value.startswith("group:")


def is_user_or_service(value: object) -> bool:
    if not is_principal(value) or not isinstance(value, str):
        return False
    return value.startswith("user:") or value.startswith("service:")


def is_resource(value: object) -> bool:
    """A concrete resource `<type>:<path>` (no wildcard)."""
    if not isinstance(value, str):
        return False
    rtype, sep, path = value.partition(":")
    if sep != ":":
        return False
    if RESOURCE_TYPE_RE.fullmatch(rtype) is None:
        return False
    segments = path.split("/")
    if len(segments) < 1 or len(segments) > MAX_SEGMENTS:
        return False
    return all(SEGMENT_RE.fullmatch(segment) is not None for segment in segments)


def is_pattern(value: object) -> bool:
    """A resource pattern: a resource, `T:p/*`, or `T:*`."""
    if not isinstance(value, str):
        return False
    if is_resource(value):
        return True
    if value.endswith("/*"):
        return is_resource(value[: -len("/*")])
    if value.endswith(":*"):
        return RESOURCE_TYPE_RE.fullmatch(value[: -len(":*")]) is not None
    return False


def is_action(value: object) -> bool:
    return isinstance(value, str) and ACTION_RE.fullmatch(value) is not None


def is_permission(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("role:"):
        return ROLE_NAME_RE.fullmatch(value[len("role:") :]) is not None
    return is_action(value)


def role_name(value: str) -> str:
    """`role:editor` -> `editor`; `editor` -> `editor` (see module docstring)."""
    if value.startswith("role:"):
        return value[len("role:") :]
    return value


def is_role_field(value: object) -> bool:
    return isinstance(value, str) and ROLE_NAME_RE.fullmatch(role_name(value)) is not None


_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 date-time (offset required; `T` separator; no leap second).

    Raises ValueError when the text is not one.
    """
    match = _RFC3339_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7)
    microsecond = 0
    if fraction is not None:
        digits = (fraction[1:] + "000000")[:6]
        microsecond = int(digits)
    offset_text = match.group(8)
    if offset_text in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = 1 if offset_text[0] == "+" else -1
        off_hours = int(offset_text[1:3])
        off_minutes = int(offset_text[4:6])
        if off_hours > 23 or off_minutes > 59:
            raise ValueError(f"bad offset in {text!r}")
        offset = sign * timedelta(hours=off_hours, minutes=off_minutes)
    # datetime() itself rejects month 13, day 32, Feb 30, hour 24, second 60...
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=timezone(offset))


def is_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Section 2: events
# --------------------------------------------------------------------------


def validate_event(event: object) -> str | None:
    """Return None if `event` is a valid contract event, else a short reason."""
    if not isinstance(event, dict):
        return "not a JSON object"
    for name in ("event_id", "tenant", "type", "actor", "occurred_at"):
        if name not in event:
            return f"missing field {name}"
    event_id = event["event_id"]
    if not isinstance(event_id, str):
        return "event_id is not a string"
    if len(event_id) < 1 or len(event_id) > MAX_EVENT_ID_CHARS:
        return "event_id must be 1-128 chars"
    if not is_tenant(event["tenant"]):
        return "invalid tenant"
    if event["type"] not in EVENT_TYPES:
        return "unknown type"
    if not is_principal(event["actor"]):
        return "invalid actor"
    if not is_time(event["occurred_at"]):
        return "invalid occurred_at"
    reason = event.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            return "reason is not a string"
        if len(reason) > MAX_REASON_CHARS:
            return "reason over 1024 chars"

    etype = event["type"]
    if etype in ("grant", "revoke"):
        for name in ("principal", "resource", "permission"):
            if name not in event:
                return f"missing field {name}"
        if not is_principal(event["principal"]):
            return "invalid principal"
        if not is_pattern(event["resource"]):
            return "invalid resource pattern"
        if not is_permission(event["permission"]):
            return "invalid permission"
        if etype == "grant":
            expires_at = event.get("expires_at")
            if expires_at is not None and not is_time(expires_at):
                return "invalid expires_at"
        return None
    if etype in ("add_member", "remove_member"):
        for name in ("group", "member"):
            if name not in event:
                return f"missing field {name}"
        if not is_group(event["group"]):
            return "invalid group"
        if not is_principal(event["member"]):
            return "invalid member"
        return None
    if etype in ("define_role", "delete_role"):
        if "role" not in event:
            return "missing field role"
        if not is_role_field(event["role"]):
            return "invalid role"
        if etype == "delete_role":
            return None
        if "actions" not in event:
            return "missing field actions"
        actions = event["actions"]
        if not isinstance(actions, list):
            return "actions is not a list"
        if len(actions) < 1 or len(actions) > MAX_ROLE_ACTIONS:
            return "actions must hold 1-256 actions"
        for action in actions:
            if not is_action(action):
                return "invalid action in actions"
        return None
    return "unknown type"


def record_problem(raw: bytes) -> str | None:
    """Return None if the raw Kafka value is a valid event, else a short reason."""
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON"
    return validate_event(decoded)


# --------------------------------------------------------------------------
# Section 3: what a permission means
# --------------------------------------------------------------------------

GrantKey = tuple[str, str, str]  # (subject, resource pattern, permission)


@dataclass
class ReferenceState:
    """The state after some prefix of one tenant's log."""

    grants: dict[GrantKey, datetime | None] = field(default_factory=dict)
    memberships: set[tuple[str, str]] = field(default_factory=set)  # (group, member)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> actions


def apply_event(state: ReferenceState, event: Event) -> None:
    """Apply one (valid, not duplicate) event to `state`, in place."""
    etype = event["type"]
    if etype == "grant":
        key = (event["principal"], event["resource"], event["permission"])
        expires_at = event.get("expires_at")
        if expires_at is None:
            state.grants[key] = None
        else:
            state.grants[key] = parse_time(expires_at)
    elif etype == "revoke":
        key = (event["principal"], event["resource"], event["permission"])
        if key in state.grants:
            del state.grants[key]
    elif etype == "add_member":
        state.memberships.add((event["group"], event["member"]))
    elif etype == "remove_member":
        state.memberships.discard((event["group"], event["member"]))
    elif etype == "define_role":
        state.roles[role_name(event["role"])] = frozenset(event["actions"])
    elif etype == "delete_role":
        name = role_name(event["role"])
        if name in state.roles:
            del state.roles[name]
    else:
        raise ValueError(f"unknown event type {etype!r}")


def subjects_of(state: ReferenceState, principal: str) -> set[str]:
    """Rule 1: P itself plus every group P reaches through one or more memberships."""
    reached = {principal}
    changed = True
    while changed:
        changed = False
        for group, member in state.memberships:
            if member in reached and group not in reached:
                reached.add(group)
                changed = True
    return reached


def is_membership_chain(
    state: ReferenceState, principal: str, group: str, chain: Sequence[str]
) -> bool:
    """Rule 1's "one or more memberships", spelled out: chain climbs from principal to group
    one direct membership at a time, visiting no principal twice."""
    if not chain or chain[-1] != group or len(set(chain)) != len(chain) or principal in chain:
        return False
    steps = zip([principal, *chain[:-1]], chain, strict=True)
    return all((upper, lower) in state.memberships for lower, upper in steps)


def pattern_matches(pattern: str, resource: str) -> bool:
    """Rule 2, literally."""
    if pattern == resource:
        return True
    r_type, _, r_path = resource.partition(":")
    r_segments = r_path.split("/")
    p_type, _, p_path = pattern.partition(":")
    if p_type != r_type:
        return False
    if p_path == "*":
        return True
    if p_path.endswith("/*"):
        p_segments = p_path[: -len("/*")].split("/")
        if len(r_segments) <= len(p_segments):
            return False
        return r_segments[: len(p_segments)] == p_segments
    return False


def permission_confers(state: ReferenceState, permission: str, action: str) -> bool:
    """Rule 3, literally."""
    if permission == action:
        return True
    if permission.startswith("role:"):
        name = permission[len("role:") :]
        if name in state.roles and action in state.roles[name]:
            return True
    return False


def actions_conferred(state: ReferenceState, permission: str) -> set[str]:
    """Every action that rule 3 lets `permission` confer in `state`."""
    if permission.startswith("role:"):
        name = permission[len("role:") :]
        if name in state.roles:
            return set(state.roles[name])
        return set()
    return {permission}


def effective_rows(state: ReferenceState, principal: str) -> dict[tuple[str, str], datetime | None]:
    """Every (grant's resource pattern, action) rules 1 and 3 put on `principal`, whether or
    not rule 4 lets it through now, with the latest expiry of the grants conferring it (None
    when one of them never expires): what the change stream of section 6 follows."""
    rows: dict[tuple[str, str], datetime | None] = {}
    subjects = subjects_of(state, principal)
    for (subject, pattern, permission), expires_at in state.grants.items():
        if subject not in subjects:
            continue
        for action in actions_conferred(state, permission):
            row = (pattern, action)
            if row not in rows:
                rows[row] = expires_at
            else:
                held = rows[row]
                rows[row] = None if held is None or expires_at is None else max(held, expires_at)
    return rows


def unexpired(expires_at: datetime | None, at: datetime) -> bool:
    """Rule 4: no expiry, or expiry strictly later than `at`."""
    return expires_at is None or expires_at > at


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware: {value!r}")


class ReferenceModel:
    """Naive evaluator of section 3 over a recorded log (one or several tenants)."""

    def __init__(self, records: Iterable[Record], *, default_tenant: str | None = None) -> None:
        records = list(records)
        last_time: dict[str, datetime] = {}
        for event, recorded_at in records:
            problem = validate_event(event)
            if problem is not None:
                raise ValueError(f"invalid event {event!r}: {problem}")
            _require_aware(recorded_at, "recorded_at")
            tenant = event["tenant"]
            if tenant in last_time and recorded_at < last_time[tenant]:
                raise ValueError(f"recorded times go backwards for tenant {tenant!r}")
            last_time[tenant] = recorded_at
        self.records: list[Record] = list(records)
        self.default_tenant = default_tenant

    @property
    def tenants(self) -> list[str]:
        found: list[str] = []
        for event, _ in self.records:
            if event["tenant"] not in found:
                found.append(event["tenant"])
        return found

    def _tenant(self, tenant: str | None) -> str | None:
        """The tenant asked about; None means "no events at all" (empty state)."""
        if tenant is not None:
            return tenant
        if self.default_tenant is not None:
            return self.default_tenant
        tenants = self.tenants
        if len(tenants) == 0:
            return None
        if len(tenants) == 1:
            return tenants[0]
        raise ValueError(f"several tenants {tenants}: pass tenant=")

    def state_at(self, at: datetime, *, tenant: str | None = None) -> ReferenceState:
        """State of `tenant` after every event recorded at or before `at`."""
        _require_aware(at, "at")
        name = self._tenant(tenant)
        state = ReferenceState()
        seen_ids: set[str] = set()
        for event, recorded_at in self.records:
            if event["tenant"] != name:
                continue
            if recorded_at > at:
                continue
            if event["event_id"] in seen_ids:
                continue
            seen_ids.add(event["event_id"])
            apply_event(state, event)
        return state

    def allowed(
        self,
        principal: str,
        resource: str,
        action: str,
        at: datetime,
        *,
        tenant: str | None = None,
    ) -> bool:
        if not is_principal(principal):
            raise ValueError(f"invalid principal {principal!r}")
        if not is_resource(resource):
            raise ValueError(f"invalid resource (patterns cannot be checked) {resource!r}")
        if not is_action(action):
            raise ValueError(f"invalid action {action!r}")
        state = self.state_at(at, tenant=tenant)
        subjects = subjects_of(state, principal)
        for (subject, pattern, permission), expires_at in state.grants.items():
            if (
                subject in subjects
                and pattern_matches(pattern, resource)
                and permission_confers(state, permission, action)
                and unexpired(expires_at, at)
            ):
                return True
        return False

    def effective_permissions(
        self, principal: str, at: datetime, *, tenant: str | None = None
    ) -> set[tuple[str, str]]:
        """Every (grant's resource pattern, action) conferred on `principal` at `at`."""
        if not is_principal(principal):
            raise ValueError(f"invalid principal {principal!r}")
        state = self.state_at(at, tenant=tenant)
        subjects = subjects_of(state, principal)
        result: set[tuple[str, str]] = set()
        for (subject, pattern, permission), expires_at in state.grants.items():
            if subject in subjects and unexpired(expires_at, at):
                for action in actions_conferred(state, permission):
                    result.add((pattern, action))
        return result

    def mentioned_principals(self, *, tenant: str | None = None) -> set[str]:
        """Every principal named in any event of the tenant (any field, any time)."""
        name = self._tenant(tenant)
        found: set[str] = set()
        for event, _ in self.records:
            if event["tenant"] != name:
                continue
            for key in ("actor", "principal", "group", "member"):
                if key in event:
                    found.add(event[key])
        return found

    def who_can(
        self, resource: str, action: str, at: datetime, *, tenant: str | None = None
    ) -> set[str]:
        """Users and services (never groups) allowed `action` on `resource` at `at`."""
        result: set[str] = set()
        for principal in self.mentioned_principals(tenant=tenant):
            if not is_user_or_service(principal):
                continue
            if self.allowed(principal, resource, action, at, tenant=tenant):
                result.add(principal)
        return result
