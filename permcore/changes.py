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
from .events import Event, GrantEvent, RevokeEvent
from .projector import REMOVED, ViewChange, source_key, split_source
from .state import NEVER, TenantState

Row = tuple[str, str, str]
"""(principal, pattern, action): one row of a principal's view."""


@dataclass(frozen=True, slots=True)
class PrincipalChange:
    """What one event changed in one principal's effective set (sorted, never both empty)."""

    principal: str
    added: tuple[tuple[str, str, int], ...]
    """(pattern, action, effective expiry in µs; NEVER for none)."""
    removed: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class EventChanges:
    """The principal changes of one applied event, in principal order (seq = index)."""

    offset: int
    recorded_at: int
    cause: str
    principals: tuple[PrincipalChange, ...]


def effective_expiry(expiries: Iterable[int]) -> int:
    """The expiry of a row held through several sources: NEVER wins, else the latest."""
    latest = -1
    for expires in expiries:
        if expires == NEVER:
            return NEVER
        latest = max(latest, expires)
    return latest


class ChangeTracker:
    """Collects the rows one event touches; once the event is applied, tells what changed.

    Created before the event mutates the state (to remember a renewed grant's old expiry),
    fed every view change, finished against the state after the event.
    """

    def __init__(self, state: TenantState, event: Event) -> None:
        # row -> source -> the expiry the event set, or REMOVED
        self._rows: dict[Row, dict[str, int]] = {}
        # The expiry, before the event, of the grant a grant or revoke event names: a grant
        # already held is only renewed (its source was on every row before), and a revoked
        # grant is gone from the state after the event.
        self._named: tuple[str, int] | None = None
        if isinstance(event, GrantEvent | RevokeEvent):
            before = state.grants.get(event.principal, {}).get((event.resource, event.permission))
            if before is not None:
                self._named = (source_key(event.principal, event.permission), before)

    def note(self, change: ViewChange) -> None:
        """Remember one view change of the event."""
        row = (change.principal, change.pattern, change.action)
        touched = self._rows.get(row)
        if touched is None:
            self._rows[row] = {change.source: change.expires}
        else:
            touched[change.source] = change.expires

    def finish(self, state: TenantState) -> list[PrincipalChange]:
        """The per-principal changes, given the state after the event."""
        sources = _RowSources(state)
        added: dict[str, list[tuple[str, str, int]]] = {}
        removed: dict[str, list[tuple[str, str]]] = {}
        for row, touched in self._rows.items():
            principal, pattern, action = row
            after = sources.of(principal, pattern, action)
            before = self._before(state, pattern, after, touched)
            if after and not before:
                added.setdefault(principal, []).append(
                    (pattern, action, effective_expiry(after.values()))
                )
            elif before and not after:
                removed.setdefault(principal, []).append((pattern, action))
            elif after:
                expires = effective_expiry(after.values())
                if expires != effective_expiry(before.values()):
                    added.setdefault(principal, []).append((pattern, action, expires))
        return [
            PrincipalChange(
                principal,
                tuple(sorted(added.get(principal, ()))),
                tuple(sorted(removed.get(principal, ()))),
            )
            for principal in sorted(added.keys() | removed.keys())
        ]

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


class _RowSources:
    """Every source of a row in one state, remembered per (subject, pattern, action) for the
    event: a fan-out asks the same group's sources for every holder."""

    def __init__(self, state: TenantState) -> None:
        self._state = state
        self._reach = state.closure()
        self._by_pattern: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self._confers: dict[tuple[str, str, str], list[tuple[str, int]]] = {}

    def of(self, principal: str, pattern: str, action: str) -> dict[str, int]:
        """source -> expiry of every grant that puts (pattern, action) on principal's view."""
        found: dict[str, int] = dict(self._subject(principal, pattern, action))
        for subject in self._reach.reached(principal):
            found.update(self._subject(subject, pattern, action))
        return found

    def _subject(self, subject: str, pattern: str, action: str) -> list[tuple[str, int]]:
        key = (subject, pattern, action)
        known = self._confers.get(key)
        if known is None:
            state = self._state
            known = self._confers[key] = [
                (source_key(subject, permission), expires)
                for permission, expires in self._grants_at(subject).get(pattern, ())
                if action in state.actions_of(permission)
            ]
        return known

    def _grants_at(self, subject: str) -> Mapping[str, list[tuple[str, int]]]:
        held = self._state.grants.get(subject)
        if not held:
            return _NO_GRANTS
        index = self._by_pattern.get(subject)
        if index is None:
            index = self._by_pattern[subject] = {}
            for (pattern, permission), expires in held.items():
                index.setdefault(pattern, []).append((permission, expires))
        return index


_NO_GRANTS: Mapping[str, list[tuple[str, int]]] = MappingProxyType({})


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
        for seq, p in enumerate(change.principals)
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
