"""The projector's state for one tenant: grants, memberships and roles, with graph queries."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from .closure import Closure, PathDelta
from .identifiers import role_of

NEVER = 0
"""Expiry value meaning the grant never expires (expiries are epoch microseconds)."""

GrantKey = tuple[str, str]
"""(resource pattern, permission) of a grant held by one subject."""


@dataclass
class TenantState:
    """Everything the projector needs to fan one event out; all of it derived from the log."""

    grants: dict[str, dict[GrantKey, int]] = field(default_factory=dict)
    role_grants: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    groups_of: dict[str, set[str]] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    applied_offset: int = -1
    entries: int = 0
    """Grants plus memberships held, kept up to date so sizing a cache entry is O(1)."""
    _closure: Closure | None = field(default=None, repr=False, compare=False)

    def size(self) -> int:
        """Rough count of entries held, to bound caches by memory rather than by tenants."""
        paths = self._closure.entries if self._closure is not None else 0
        return self.entries + paths + len(self.roles) + 1

    def closure(self) -> Closure:
        """The incrementally kept shortest membership paths, built on first use."""
        if self._closure is None:
            self._closure = Closure.build(self.groups_of, self.members)
        return self._closure

    def link(self, group: str, member: str) -> list[PathDelta]:
        """Add a direct membership and return the path rows it changes (new edges only)."""
        closure = self.closure()
        self.add_member(group, member, keep_closure=True)
        return closure.added(group, member)

    def unlink(self, group: str, member: str) -> list[PathDelta]:
        """Remove a direct membership and return the path rows it changes (held edges only)."""
        closure = self.closure()
        self.remove_member(group, member, keep_closure=True)
        return closure.removed(group, member)

    def actions_of(self, permission: str) -> frozenset[str]:
        """The actions a permission confers now: itself, or the role's current actions."""
        role = role_of(permission)
        if role is None:
            return frozenset((permission,))
        return self.roles.get(role, frozenset())

    def set_grant(self, subject: str, pattern: str, permission: str, expires: int) -> None:
        """Record a grant, replacing the expiry of an existing one."""
        held = self.grants.setdefault(subject, {})
        self.entries += (pattern, permission) not in held
        held[(pattern, permission)] = expires
        role = role_of(permission)
        if role is not None:
            self.role_grants.setdefault(role, set()).add((subject, pattern))

    def delete_grant(self, subject: str, pattern: str, permission: str) -> None:
        """Forget a grant."""
        held = self.grants.get(subject)
        if held is not None and held.pop((pattern, permission), None) is not None:
            self.entries -= 1
            if not held:
                del self.grants[subject]
        role = role_of(permission)
        if role is not None and role in self.role_grants:
            self.role_grants[role].discard((subject, pattern))
            if not self.role_grants[role]:
                del self.role_grants[role]

    def add_member(self, group: str, member: str, *, keep_closure: bool = False) -> None:
        """Record that member belongs to group directly."""
        if not keep_closure:
            # Folds and loads change edges without repairs: rebuild the closure when needed.
            self._closure = None
        members = self.members.setdefault(group, set())
        self.entries += member not in members
        members.add(member)
        self.groups_of.setdefault(member, set()).add(group)

    def remove_member(self, group: str, member: str, *, keep_closure: bool = False) -> None:
        """Forget a direct membership."""
        if not keep_closure:
            self._closure = None
        self.entries -= _discard(self.members, group, member)
        _discard(self.groups_of, member, group)

    def has_member(self, group: str, member: str) -> bool:
        """True when member belongs to group directly."""
        return member in self.members.get(group, ())

    def paths_from(self, principal: str) -> dict[str, str]:
        """Each group the principal reaches, mapped to the member a shortest path enters it by.

        Neighbours are visited in sorted order so that every process derives the same paths.
        """
        via: dict[str, str] = {}
        queue = deque([principal])
        while queue:
            member = queue.popleft()
            for group in sorted(self.groups_of.get(member, ())):
                if group != principal and group not in via:
                    via[group] = member
                    queue.append(group)
        return via

    def holders_of(self, subject: str) -> set[str]:
        """The subject and every principal that reaches it through memberships."""
        return _closure(subject, self.members)


def chain_to(via: Mapping[str, str], principal: str, group: str) -> tuple[str, ...] | None:
    """The groups from the principal's direct group up to group, from a paths_from map.

    None when the map does not lead back to the principal (a view read mid-update).
    """
    chain = [group]
    current = group
    for _ in range(len(via)):
        member = via.get(current)
        if member is None:
            return None
        if member == principal:
            return tuple(reversed(chain))
        chain.append(member)
        current = member
    return None


def _discard(index: dict[str, set[str]], key: str, value: str) -> bool:
    values = index.get(key)
    if values is None or value not in values:
        return False
    values.discard(value)
    if not values:
        del index[key]
    return True


def _closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
