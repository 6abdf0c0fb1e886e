"""Pure decisions: whether view rows or a projector state allow an action, and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .identifiers import pattern_matches, role_of
from .projector import split_source
from .state import NEVER, TenantState, chain_to


@dataclass(frozen=True, slots=True)
class Reason:
    """One path that grants: the grant (subject, pattern, permission) and how it reaches P."""

    principal: str
    subject: str
    pattern: str
    permission: str
    expires: int
    chain: tuple[str, ...] | None = None
    """Groups from the principal's direct group up to subject; None when direct or unknown."""

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
        if self.via_group is None:
            holder = self.principal
        else:
            path = " -> ".join(self.chain or (self.subject,))
            holder = f"{self.principal} (member of {path})"
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
            "via_chain": list(self.chain) if self.chain else None,
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
    principal: str, pattern: str, sources: Iterable[tuple[str, int]], now_us: int
) -> list[Reason]:
    """The live reasons of one view row, from its (source, expiry) pairs."""
    reasons = []
    for source, expires in sorted(sources):
        if is_live(expires, now_us):
            subject, permission = split_source(source)
            reasons.append(Reason(principal, subject, pattern, permission, expires))
    return reasons


def decide_from_rows(
    principal: str, rows: Iterable[tuple[str, Iterable[tuple[str, int]]]], now_us: int
) -> list[Reason]:
    """Reasons that allow, from the (pattern, source pairs) rows of a check read; empty = deny."""
    reasons: list[Reason] = []
    for pattern, sources in rows:
        reasons.extend(reasons_from_sources(principal, pattern, sources, now_us))
    return reasons


def with_chains(reasons: Iterable[Reason], via: Mapping[str, str]) -> list[Reason]:
    """Reasons with the membership chain of each group reason, from the principal's paths."""
    return [
        r if r.via_group is None else replace(r, chain=chain_to(via, r.principal, r.subject))
        for r in reasons
    ]


def decide_from_state(
    state: TenantState, principal: str, resource: str, action: str, now_us: int
) -> list[Reason]:
    """Reasons that allow, by walking a projector state (used for past points in time)."""
    via = state.paths_from(principal)
    reasons = []
    for subject in sorted({principal, *via}):
        for (pattern, permission), expires in sorted(state.grants.get(subject, {}).items()):
            if (
                is_live(expires, now_us)
                and action in state.actions_of(permission)
                and pattern_matches(pattern, resource)
            ):
                reasons.append(Reason(principal, subject, pattern, permission, expires))
    return with_chains(reasons, via)
