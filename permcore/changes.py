"""Effective-permission changes of one event (contract section 6), derived without I/O.

A principal's effective set is every (resource pattern, action) row of its view that holds at
least one source. An event changes a row's sources; the set changes only when a row goes from
no source to some (added) or from some to none (removed). A row that keeps sources but whose
effective expiry moves (a grant renewed with another expiry) is listed as added again, with
the new expiry. Expiries passing are not changes: followers read `expires_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from .consistency import LogPoint, encode_change_cursor, encode_token
from .decisions import micros_to_rfc3339
from .events import DefineRoleEvent, DeleteRoleEvent, Event, GrantEvent, RevokeEvent
from .projector import REMOVED, ViewChange, source_key, split_source
from .state import NEVER, TenantState


@dataclass(frozen=True, slots=True)
class PrincipalChange:
    """What one event changed in one principal's effective set (sorted, never both empty)."""

    principal: str
    added: tuple[tuple[str, str, int], ...]
    """(pattern, action, effective expiry in µs; NEVER for none)."""
    removed: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class EventChanges:
    """Principal changes of one applied event, in principal order: all of them, or one run of
    them when a large event hands them out over several pieces (seq = first_seq + index)."""

    offset: int
    recorded_at: int
    cause: str
    principals: tuple[PrincipalChange, ...]
    first_seq: int = 0


def effective_expiry(expiries: Iterable[int]) -> int:
    """The expiry of a row held through several sources: NEVER wins, else the latest."""
    latest = -1
    for expires in expiries:
        if expires == NEVER:
            return NEVER
        latest = max(latest, expires)
    return latest


class ChangeTracker:
    """Collects the rows one event touches and tells what changed in each principal's set.

    Created before the event mutates the state (to remember a renewed grant's old expiry) and
    fed every view change after it did. With `streaming`, the event's view changes come one
    principal at a time in principal order (the projector's membership and grant fan-outs), so
    a principal is judged once the next one starts and only its own rows are held: memory
    stays bounded by one principal however large the fan-out. Otherwise (role changes) every
    row is held until `finish`.
    """

    def __init__(
        self,
        state: TenantState,
        event: Event,
        *,
        streaming: bool = False,
        sources: RowSources | None = None,
    ) -> None:
        # principal -> (pattern, action) -> source -> the expiry the event set, or REMOVED
        self._rows: dict[str, dict[tuple[str, str], dict[str, int]]] = {}
        self._state = state
        # Shared by the trackers of one batch, which told it of this event (RowSources.forget).
        self._sources = sources
        self._streaming = streaming
        self._current: str | None = None
        self._ready: list[PrincipalChange] = []
        # The expiry, before the event, of the grant a grant or revoke event names: a grant
        # already held is only renewed (its source was on every row before), and a revoked
        # grant is gone from the state after the event.
        self._named: tuple[str, int] | None = None
        if isinstance(event, GrantEvent | RevokeEvent):
            before = state.grants.get(event.principal, {}).get((event.resource, event.permission))
            if before is not None:
                self._named = (source_key(event.principal, event.permission), before)

    def note(self, change: ViewChange) -> None:
        """Remember one view change of the event (the state is already the one after it)."""
        principal = change.principal
        if self._streaming and principal != self._current:
            if self._current is not None:
                if principal < self._current:
                    raise RuntimeError(f"view changes out of principal order at {principal!r}")
                self._judge(self._current)
            self._current = principal
        rows = self._rows.get(principal)
        if rows is None:
            rows = self._rows[principal] = {}
        key = (change.pattern, change.action)
        touched = rows.get(key)
        if touched is None:
            rows[key] = {change.source: change.expires}
        else:
            touched[change.source] = change.expires

    def ready(self) -> list[PrincipalChange]:
        """The changes of the principals judged since the last call, in principal order."""
        out, self._ready = self._ready, []
        return out

    def finish(self) -> list[PrincipalChange]:
        """The changes of every principal not yet handed out, once the event is applied."""
        for principal in sorted(self._rows):
            self._judge(principal)
        self._current = None
        return self.ready()

    def _judge(self, principal: str) -> None:
        """Compare one principal's touched rows before and after the event, then forget them."""
        state = self._state
        if self._sources is None:
            self._sources = RowSources(state)
        held_by = self._sources.held_by(principal)
        added: list[tuple[str, str, int]] = []
        removed: list[tuple[str, str]] = []
        for (pattern, action), touched in self._rows.pop(principal).items():
            after = RowSources.of(held_by, pattern, action)
            before = self._before(state, pattern, after, touched)
            if after and not before:
                added.append((pattern, action, effective_expiry(after.values())))
            elif before and not after:
                removed.append((pattern, action))
            elif after:
                expires = effective_expiry(after.values())
                if expires != effective_expiry(before.values()):
                    added.append((pattern, action, expires))
        if added or removed:
            self._ready.append(
                PrincipalChange(principal, tuple(sorted(added)), tuple(sorted(removed)))
            )

    def _before(
        self, state: TenantState, pattern: str, after: dict[str, int], touched: dict[str, int]
    ) -> dict[str, int]:
        """The row's sources before the event: what it set is new (unless renewed), what it
        removed was there, with the expiry its grant had."""
        before = {s: e for s, e in after.items() if s not in touched}
        for source, expires in touched.items():
            if expires != REMOVED:
                continue
            subject, permission = split_source(source)
            # A lost group or role action leaves the grant itself in the state.
            held = state.grants.get(subject, {}).get((pattern, permission))
            if held is None and self._named is not None and self._named[0] == source:
                held = self._named[1]
            before[source] = NEVER if held is None else held
        if self._named is not None and touched.get(self._named[0], REMOVED) != REMOVED:
            before[self._named[0]] = self._named[1]
        return before


Conferred = Mapping[str, list[tuple[str, frozenset[str], int]]]
"""One subject's grants by pattern: (source, the actions it confers, expiry)."""


class RowSources:
    """Every source of a row in the current state, with each subject's grants indexed once
    and kept from event to event until one changes them: a fan-out asks the same group's
    grants for every holder, and the events of a batch ask about the same subjects again."""

    def __init__(self, state: TenantState) -> None:
        self._state = state
        self._conferred: dict[str, Conferred] = {}
        # permission -> the actions it confers: parsing a role name per grant cost most of an
        # index (a role event clears it with the indexes).
        self._actions: dict[str, frozenset[str]] = {}

    def forget(self, event: Event) -> None:
        """Drop what an event about to be applied changes: its subject's grants, or every
        index when a role's actions change (memberships move no grant)."""
        if isinstance(event, GrantEvent | RevokeEvent):
            self._conferred.pop(event.principal, None)
        elif isinstance(event, DefineRoleEvent | DeleteRoleEvent):
            self._conferred.clear()
            self._actions.clear()

    def held_by(self, principal: str) -> list[Conferred]:
        """The grant indexes of the principal and of every group it reaches (non-empty)."""
        indexes = []
        for subject in (principal, *self._state.closure().reached(principal)):
            index = self._conferred_by(subject)
            if index:
                indexes.append(index)
        return indexes

    @staticmethod
    def of(held_by: list[Conferred], pattern: str, action: str) -> dict[str, int]:
        """source -> expiry of every grant that puts (pattern, action) on the principal."""
        found: dict[str, int] = {}
        for index in held_by:
            for source, actions, expires in index.get(pattern, ()):
                if action in actions:
                    found[source] = expires
        return found

    def _conferred_by(self, subject: str) -> Conferred:
        known = self._conferred.get(subject)
        if known is not None:
            return known
        held = self._state.grants.get(subject)
        if not held:
            return _NO_GRANTS
        index: dict[str, list[tuple[str, frozenset[str], int]]] = {}
        actions_of = self._actions
        for (pattern, permission), expires in held.items():
            actions = actions_of.get(permission)
            if actions is None:
                actions = actions_of[permission] = self._state.actions_of(permission)
            index.setdefault(pattern, []).append(
                (source_key(subject, permission), actions, expires)
            )
        self._conferred[subject] = index
        return index


_NO_GRANTS: Conferred = MappingProxyType({})


BUCKET_BITS = 16
"""A tenant's changes are stored in buckets of 2**16 offsets of its partition."""

AFTER_EVENT = 2**31 - 1
"""A seq above every real one: reading after (offset, AFTER_EVENT) skips the whole event."""

R = TypeVar("R")


def bucket_of(offset: int) -> int:
    """The storage bucket of an event's changes."""
    return offset >> BUCKET_BITS


def change_records(
    tenant: str, partition: int, change: EventChanges
) -> list[tuple[int, dict[str, object]]]:
    """(seq, record) of each principal an event changed, as the contract publishes them."""
    position = encode_token(tenant, LogPoint(partition, change.offset))
    recorded_at = micros_to_rfc3339(change.recorded_at)
    return [
        (
            seq,
            {
                "tenant": tenant,
                "principal": p.principal,
                "position": position,
                "recorded_at": recorded_at,
                "cause": change.cause,
                "added": [
                    {"resource": r, "action": a, "expires_at": micros_to_rfc3339(e)}
                    for r, a, e in p.added
                ],
                "removed": [{"resource": r, "action": a} for r, a in p.removed],
            },
        )
        for seq, p in enumerate(change.principals, change.first_seq)
    ]


def change_page(
    tenant: str,
    current: LogPoint,
    after: tuple[LogPoint, int | None],
    rows: list[tuple[int, int, R]],
    limit: int,
) -> tuple[list[tuple[str, R]], str]:
    """((cursor, record) items, next) of up to limit stored rows read after `after` and up to
    the tenant's current point (rows holds up to limit + 1, to tell whether more follow).

    A cursor names a record inside its event only when the event's next record is still to
    come; when the rows are drained, next is the current point (nothing before it is left).
    """
    point, seq = after
    if not rows:
        if current.offset > point.offset:
            return [], encode_token(tenant, current)
        if seq is None:
            return [], encode_token(tenant, point)
        return [], encode_change_cursor(tenant, point, seq)
    more = len(rows) > limit
    items: list[tuple[str, R]] = []
    for index, (offset, row_seq, record) in enumerate(rows[:limit]):
        at = LogPoint(current.partition, offset)
        following = rows[index + 1] if index + 1 < len(rows) else None
        last_of_event = following is None or following[0] != offset
        cursor = (
            encode_token(tenant, at) if last_of_event else encode_change_cursor(tenant, at, row_seq)
        )
        items.append((cursor, record))
    return items, items[-1][0] if more else encode_token(tenant, current)
