"""Usage and unused access, pure: what a decision credits, and what went unused in a window.

A decision credits usage *items*: `(kind, item)` pairs whose item is text joined with `|`
(never part of an identifier, contract section 1). Findings compare the tenant's inventory
(what exists and since when, folded from its event log) with the last use of each item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .decisions import Reason, micros_to_rfc3339
from .projector import to_micros
from .state import NEVER

GRANT = "grant"
MEMBERSHIP = "membership"
ROLE_ACTION = "role_action"
PERMISSION = "permission"
"""A principal's effective (pattern, action), for the per-principal usage view."""
DENIED = "denied"
"""A principal asked for something it lacks."""

FINDING_KINDS = (GRANT, MEMBERSHIP, ROLE_ACTION)
USAGE_KINDS = (GRANT, MEMBERSHIP, ROLE_ACTION, PERMISSION, DENIED)
DAY_US = 86_400_000_000
SEP = "|"

UsageKey = tuple[str, str]
"""(kind, item) of one usage counter."""


def join(*parts: str) -> str:
    """The item text of a usage key."""
    return SEP.join(parts)


def split(item: str) -> list[str]:
    """The parts of an item text."""
    return item.split(SEP)


def day_of(micros: int) -> int:
    """Days since the epoch of a time in epoch microseconds (UTC)."""
    return micros // DAY_US


def credits(principal: str, action: str, reasons: Sequence[Reason]) -> set[UsageKey]:
    """What one decision uses: each reason's grant, the memberships on its chain, the role's
    action, and the principal's (pattern, action); a denial credits only `denied`."""
    if not reasons:
        return {(DENIED, principal)}
    used: set[UsageKey] = set()
    for reason in reasons:
        used.add((GRANT, join(reason.subject, reason.pattern, reason.permission)))
        used.add((PERMISSION, join(principal, reason.pattern, action)))
        role = reason.via_role
        if role is not None:
            used.add((ROLE_ACTION, join(role, action)))
        member = principal
        for group in reason.chain or ():
            used.add((MEMBERSHIP, join(group, member)))
            member = group
    return used


@dataclass(frozen=True, slots=True)
class Since:
    """When something came to exist (recorded time, µs) and the event that made it."""

    at: int
    by: str
    event_id: str


@dataclass
class Inventory:
    """What a tenant's log says exists now, each thing with the event it has existed since."""

    grants: dict[tuple[str, str, str], tuple[Since, int]] = field(default_factory=dict)
    """(subject, pattern, permission) -> (since, expiry µs, 0 = never)."""
    members: dict[tuple[str, str], Since] = field(default_factory=dict)
    """(group, member) -> since."""
    roles: dict[str, dict[str, Since]] = field(default_factory=dict)
    """role -> action -> since the action has been part of the role without a break."""

    def size(self) -> int:
        """Things held, to bound caches of inventories by what they hold."""
        return len(self.grants) + len(self.members) + sum(map(len, self.roles.values())) + 1

    def apply(self, event: Mapping[str, Any], recorded_at: int) -> None:
        """Fold one applied event (its recorded JSON) recorded at recorded_at µs."""
        since = Since(recorded_at, str(event.get("actor", "")), str(event.get("event_id", "")))
        match event.get("type"):
            case "grant":
                key = (event["principal"], event["resource"], event["permission"])
                expires = _expiry(event.get("expires_at"))
                held = self.grants.get(key)
                # A repeated grant only replaces the expiry: the grant has existed since the first.
                self.grants[key] = (held[0] if held else since, expires)
            case "revoke":
                self.grants.pop((event["principal"], event["resource"], event["permission"]), None)
            case "add_member":
                self.members.setdefault((event["group"], event["member"]), since)
            case "remove_member":
                self.members.pop((event["group"], event["member"]), None)
            case "define_role":
                old = self.roles.get(event["role"], {})
                self.roles[event["role"]] = {a: old.get(a, since) for a in event["actions"]}
            case "delete_role":
                self.roles.pop(event["role"], None)


def fold_inventory(events: Iterable[tuple[Mapping[str, Any], int]]) -> Inventory:
    """The inventory after (event JSON, recorded_at µs) pairs in log order."""
    inventory = Inventory()
    for event, recorded_at in events:
        inventory.apply(event, recorded_at)
    return inventory


def _expiry(value: Any) -> int:
    if value is None:
        return NEVER
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return to_micros(value)


@dataclass(frozen=True, slots=True)
class Finding:
    """One unused thing with its evidence and the event that would remove it."""

    kind: str
    item: str
    since: Since
    last_used: int | None
    uses: int
    recommendation: dict[str, Any]
    expires: int = NEVER

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order of findings in a listing (and of paging cursors)."""
        return FINDING_KINDS.index(self.kind), self.item

    @property
    def finding_id(self) -> str:
        """A stable name of the finding, used in cursors and remediation reasons."""
        return f"{self.kind}:{self.item}"

    def as_json(self) -> dict[str, Any]:
        """The finding as contract section 7 shows it."""
        parts = split(self.item)
        body: dict[str, Any] = {"kind": self.kind, "id": self.finding_id}
        if self.kind == GRANT:
            body["grant"] = {
                "principal": parts[0],
                "resource": parts[1],
                "permission": parts[2],
                "expires_at": micros_to_rfc3339(self.expires),
            }
        elif self.kind == MEMBERSHIP:
            body["membership"] = {"group": parts[0], "member": parts[1]}
        else:
            body["role_action"] = {"role": parts[0], "action": parts[1]}
        body.update(
            granted_at=micros_to_rfc3339(self.since.at) or "",
            granted_by=self.since.by,
            granted_by_event=self.since.event_id,
            last_used_at=None if self.last_used is None else micros_to_rfc3339(self.last_used),
            uses=self.uses,
            recommendation={"event": self.recommendation},
        )
        return body


def is_unused(last_used: int | None, now_us: int, days: int) -> bool:
    """Not used in the last `days` days; with days = 0, never used at all."""
    if last_used is None:
        return True
    return days > 0 and last_used < now_us - days * DAY_US


def unused_findings(
    tenant: str,
    inventory: Inventory,
    last_used: Mapping[UsageKey, int],
    window_uses: Mapping[UsageKey, int],
    now_us: int,
    days: int,
) -> list[Finding]:
    """Every grant, membership and role action that existed at least `days` days before now
    and was not used in the last `days` days (days = 0: never used), in listing order.

    Expired grants confer nothing and are left out. A role's unused actions share one
    recommendation: the role defined with the actions that stay (or deleted if none would).
    """
    oldest = now_us - days * DAY_US
    reason = (
        f"permstore finding: unused for {days} days" if days else "permstore finding: never used"
    )
    found: list[Finding] = []

    def stale(key: UsageKey, since: Since) -> bool:
        return since.at <= oldest and is_unused(last_used.get(key), now_us, days)

    def finding(key: UsageKey, since: Since, event: dict[str, Any], expires: int) -> Finding:
        body = {"type": event.pop("type"), "tenant": tenant, **event, "reason": reason}
        return Finding(
            key[0],
            key[1],
            since,
            last_used.get(key),
            window_uses.get(key, 0),
            body,
            expires,
        )

    for (subject, pattern, permission), (since, expires) in inventory.grants.items():
        key = (GRANT, join(subject, pattern, permission))
        if (expires == NEVER or expires > now_us) and stale(key, since):
            event = {
                "type": "revoke",
                "principal": subject,
                "resource": pattern,
                "permission": permission,
            }
            found.append(finding(key, since, event, expires))
    for (group, member), since in inventory.members.items():
        key = (MEMBERSHIP, join(group, member))
        if stale(key, since):
            event = {"type": "remove_member", "group": group, "member": member}
            found.append(finding(key, since, event, NEVER))
    for role, actions in inventory.roles.items():
        dropped = {a for a, since in actions.items() if stale((ROLE_ACTION, join(role, a)), since)}
        keep = sorted(set(actions) - dropped)
        for action in sorted(dropped):
            role_event: dict[str, Any] = (
                {"type": "define_role", "role": role, "actions": keep}
                if keep
                else {"type": "delete_role", "role": role}
            )
            key = (ROLE_ACTION, join(role, action))
            found.append(finding(key, actions[action], role_event, NEVER))
    found.sort(key=lambda f: f.sort_key)
    return found


def window_days(now_us: int, days: int) -> list[int]:
    """The day buckets that make up the last `days` days (today included); none for 0."""
    today = day_of(now_us)
    return list(range(today - days + 1, today + 1)) if days > 0 else []
