"""Pure decisions: whether view rows or a projector state allow an action, and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from permcore.identifiers import pattern_matches, role_of
from permcore.projector import split_source
from permcore.state import NEVER, TenantState


@dataclass(frozen=True, slots=True)
class Reason:
    """One path that grants: the grant (subject, pattern, permission) and how it reaches P."""

    principal: str
    subject: str
    pattern: str
    permission: str
    expires: int

    @property
    def via_group(self) -> str | None:
        """The group through which the principal holds the grant, if not held directly."""
        return None if self.subject == self.principal else self.subject

    @property
    def via_role(self) -> str | None:
        """The role the grant names, if any."""
        return role_of(self.permission)

    def describe(self) -> str:
        """One line for people."""
        holder = self.principal if self.via_group is None else f"member of {self.subject}"
        role = f" via role {self.via_role}" if self.via_role else ""
        return f"{holder} holds {self.permission} on {self.pattern}{role}"

    def as_json(self) -> dict[str, object]:
        """The reason as the API shows it."""
        return {
            "kind": "direct" if self.via_group is None else "group",
            "grant": {
                "principal": self.subject,
                "resource": self.pattern,
                "permission": self.permission,
            },
            "via_group": self.via_group,
            "via_role": self.via_role,
            "pattern": self.pattern,
            "expires_at": micros_to_rfc3339(self.expires),
            "description": self.describe(),
        }


def micros_to_rfc3339(micros: int) -> str | None:
    """RFC 3339 text of an epoch-microsecond expiry; None for NEVER."""
    if micros == NEVER:
        return None
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def is_live(expires: int, now_us: int) -> bool:
    """A source confers while it never expires or expires strictly later than now."""
    return expires == NEVER or expires > now_us


def reasons_from_sources(
    principal: str, pattern: str, sources: Mapping[str, int], now_us: int
) -> list[Reason]:
    """The live reasons of one view row."""
    reasons = []
    for source, expires in sorted(sources.items()):
        if is_live(expires, now_us):
            subject, permission = split_source(source)
            reasons.append(Reason(principal, subject, pattern, permission, expires))
    return reasons


def decide_from_rows(
    principal: str, rows: Iterable[tuple[str, Mapping[str, int] | None]], now_us: int
) -> list[Reason]:
    """Reasons that allow, from the (pattern, sources) rows of a check read; empty = deny."""
    reasons: list[Reason] = []
    for pattern, sources in rows:
        reasons.extend(reasons_from_sources(principal, pattern, sources or {}, now_us))
    return reasons


def decide_from_state(
    state: TenantState, principal: str, resource: str, action: str, now_us: int
) -> list[Reason]:
    """Reasons that allow, by walking a projector state (used for past points in time)."""
    reasons = []
    for subject in sorted(state.subjects_of(principal)):
        for (pattern, permission), expires in sorted(state.grants.get(subject, {}).items()):
            if (
                is_live(expires, now_us)
                and action in state.actions_of(permission)
                and pattern_matches(pattern, resource)
            ):
                reasons.append(Reason(principal, subject, pattern, permission, expires))
    return reasons
