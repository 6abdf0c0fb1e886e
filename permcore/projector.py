"""The pure projector: (state, event) -> view changes and state changes. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from .closure import PathDelta
from .events import (
    AddMemberEvent,
    DefineRoleEvent,
    DeleteRoleEvent,
    Event,
    GrantEvent,
    RemoveMemberEvent,
    RevokeEvent,
)
from .state import NEVER, TenantState

if TYPE_CHECKING:
    from .changes import EventChanges, PrincipalChange

REMOVED = -1
"""Marker of a removed source in a view change (live expiries are NEVER or positive)."""


def source_key(subject: str, permission: str) -> str:
    """Provenance of a view row: the grant's subject and permission (pattern is the row's)."""
    return f"{subject}|{permission}"


def split_source(source: str) -> tuple[str, str]:
    """Inverse of source_key: (subject, permission)."""
    subject, _, permission = source.partition("|")
    return subject, permission


def to_micros(moment: datetime | None) -> int:
    """Epoch microseconds of an aware datetime; NEVER for None."""
    if moment is None:
        return NEVER
    delta = moment - datetime.fromtimestamp(0, moment.tzinfo)
    return max(1, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


class ViewChange(NamedTuple):
    """One source of one (principal, pattern, action) row set to an expiry, or REMOVED.

    A named tuple, not a frozen dataclass: a fan-out makes one per view cell, and a tuple is
    built several times faster."""

    principal: str
    pattern: str
    action: str
    source: str
    expires: int


class PathChange(NamedTuple):
    """In principal's membership paths, group is now entered through via (None: unreached)."""

    principal: str
    group: str
    via: str | None


@dataclass(frozen=True, slots=True)
class StateChange:
    """One row of the projector's own persisted state; value None deletes it."""

    kind: str
    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event accepted into the log, with its position and LogAppendTime (epoch us)."""

    event: Event
    offset: int
    recorded_at: int


@dataclass
class EventEffects:
    """What applying one event changes."""

    offset: int
    views: list[ViewChange] = field(default_factory=list)
    state: list[StateChange] = field(default_factory=list)
    paths: list[PathChange] = field(default_factory=list)


@dataclass
class BatchEffects:
    """What applying a batch of one tenant's events changes, in log order."""

    applied: list[RecordedEvent] = field(default_factory=list)
    duplicates: list[RecordedEvent] = field(default_factory=list)
    stale: list[RecordedEvent] = field(default_factory=list)
    effects: list[EventEffects] = field(default_factory=list)
    changes: list[EventChanges] = field(default_factory=list)
    """Effective-permission changes of the events this batch completes (when tracked)."""

    def last_offset(self) -> int | None:
        """The newest offset the batch saw (applied, duplicate or stale); None when empty."""
        return max((r.offset for r in (*self.applied, *self.duplicates, *self.stale)), default=None)

    def view_change_count(self) -> int:
        """Number of view cells this batch writes."""
        return sum(len(e.views) for e in self.effects)


GRANT_KIND = "grant"
MEMBER_KIND = "member"
ROLE_KIND = "role"
EVENT_KIND = "event"
STATE_KINDS = (GRANT_KIND, MEMBER_KIND, ROLE_KIND)


def grant_state_key(subject: str, pattern: str, permission: str) -> str:
    """State row key of a grant."""
    return f"{subject}\x1f{pattern}\x1f{permission}"


def member_state_key(group: str, member: str) -> str:
    """State row key of a membership edge."""
    return f"{group}\x1f{member}"


def project_batch(
    state: TenantState, events: Sequence[RecordedEvent], known_ids: Iterable[str]
) -> BatchEffects:
    """Apply a tenant's events in order to state, skipping applied offsets and repeated ids."""
    seen = set(known_ids)
    result = BatchEffects()
    for recorded in events:
        if recorded.offset <= state.applied_offset:
            result.stale.append(recorded)
            continue
        state.applied_offset = recorded.offset
        if recorded.event.event_id in seen:
            result.duplicates.append(recorded)
            continue
        seen.add(recorded.event.event_id)
        effects = apply_event(state, recorded.event, recorded.offset)
        effects.state.append(StateChange(EVENT_KIND, recorded.event.event_id, str(recorded.offset)))
        result.applied.append(recorded)
        result.effects.append(effects)
    return result


def apply_event(state: TenantState, event: Event, offset: int) -> EventEffects:
    """Mutate state by one event and return the view and state rows it changes."""
    effects = EventEffects(offset=offset)
    effects.views.extend(apply_lazily(state, event, effects))
    return effects


def apply_lazily(state: TenantState, event: Event, effects: EventEffects) -> Iterator[ViewChange]:
    """Mutate state by one event, put its state and path rows in effects, and return its view
    changes as an iterator, to be drained before the state changes again."""
    match event:
        case GrantEvent():
            return _grant(state, event, effects)
        case RevokeEvent():
            return _revoke(state, event, effects)
        case AddMemberEvent():
            return _add_member(state, event, effects)
        case RemoveMemberEvent():
            return _remove_member(state, event, effects)
        case DefineRoleEvent():
            return _set_role(state, event.role, frozenset(event.actions), effects)
        case DeleteRoleEvent():
            return _set_role(state, event.role, frozenset(), effects)
    return iter(())


def project_pieces(
    state: TenantState,
    events: Sequence[RecordedEvent],
    known_ids: Iterable[str],
    max_rows: int = 2000,
    *,
    track_changes: bool = False,
) -> Iterator[BatchEffects]:
    """project_batch in bounded pieces of at most max_rows view and path rows each.

    A piece lists as applied (or duplicate, stale) only the events it completes, with their
    state rows; an event larger than a piece spreads its rows over several. Writing each piece
    before asking for the next one keeps an event's position unmoved until all its rows are in.
    The state is mutated as the pieces are produced: drop it if they are not all written.
    With track_changes, pieces also carry the event's effective-permission changes
    (permcore.changes): each principal's once its rows are all in this piece or an earlier
    one, the rest with the piece completing the event.
    """
    # Imported here: the change tracker builds on this module's view changes.
    from .changes import ChangeTracker, RowSources

    seen = set(known_ids)
    sources = RowSources(state) if track_changes else None
    piece = BatchEffects()
    rows = 0
    for recorded in events:
        if recorded.offset <= state.applied_offset:
            piece.stale.append(recorded)
            continue
        state.applied_offset = recorded.offset
        if recorded.event.event_id in seen:
            piece.duplicates.append(recorded)
            continue
        seen.add(recorded.event.event_id)
        tracker = None
        if sources is not None:
            sources.forget(recorded.event)
            streaming = _by_principal(recorded.event)
            tracker = ChangeTracker(state, recorded.event, streaming=streaming, sources=sources)
        handed_out = 0
        effects = EventEffects(offset=recorded.offset)
        views = apply_lazily(state, recorded.event, effects)
        part = EventEffects(offset=recorded.offset)
        piece.effects.append(part)
        for view in views:
            if tracker is not None:
                tracker.note(view)
            part.views.append(view)
            rows += 1
            if rows >= max_rows:
                if tracker is not None:
                    handed_out += _hand_out(piece, recorded, tracker.ready(), handed_out)
                yield piece
                piece, rows = BatchEffects(), 0
                part = EventEffects(offset=recorded.offset)
                piece.effects.append(part)
        for path in effects.paths:
            part.paths.append(path)
            rows += 1
            if rows >= max_rows:
                if tracker is not None:
                    handed_out += _hand_out(piece, recorded, tracker.ready(), handed_out)
                yield piece
                piece, rows = BatchEffects(), 0
                part = EventEffects(offset=recorded.offset)
                piece.effects.append(part)
        part.state.extend(effects.state)
        part.state.append(StateChange(EVENT_KIND, recorded.event.event_id, str(recorded.offset)))
        piece.applied.append(recorded)
        if tracker is not None:
            _hand_out(piece, recorded, tracker.finish(), handed_out)
    if piece.effects or piece.stale or piece.duplicates:
        yield piece


def _hand_out(
    piece: BatchEffects, recorded: RecordedEvent, found: list[PrincipalChange], first_seq: int
) -> int:
    """Attach an event's changes judged so far to the piece being filled; returns how many."""
    # Imported here: the change tracker builds on this module's view changes.
    from .changes import EventChanges

    if found:
        piece.changes.append(
            EventChanges(
                recorded.offset,
                recorded.recorded_at,
                recorded.event.event_id,
                tuple(found),
                first_seq,
            )
        )
    return len(found)


def _by_principal(event: Event) -> bool:
    """Whether the event's view changes come one principal at a time, in principal order."""
    return isinstance(event, GrantEvent | RevokeEvent | AddMemberEvent | RemoveMemberEvent)


def _grant(state: TenantState, event: GrantEvent, effects: EventEffects) -> Iterator[ViewChange]:
    expires = to_micros(event.expires_at)
    subject, pattern, permission = event.principal, event.resource, event.permission
    if state.grants.get(subject, {}).get((pattern, permission)) == expires:
        return iter(())
    state.set_grant(subject, pattern, permission, expires)
    effects.state.append(
        StateChange(GRANT_KIND, grant_state_key(subject, pattern, permission), str(expires))
    )
    return _fan_out(state, subject, pattern, permission, expires)


def _fan_out(
    state: TenantState, subject: str, pattern: str, permission: str, value: int
) -> Iterator[ViewChange]:
    """The source set to value on every holder's rows of each action the permission confers."""
    source = source_key(subject, permission)
    actions = state.actions_of(permission)
    # In principal order: the change tracker judges each holder once its rows are out.
    for holder in sorted(state.holders_of(subject)):
        for action in actions:
            yield ViewChange(holder, pattern, action, source, value)


def _revoke(state: TenantState, event: RevokeEvent, effects: EventEffects) -> Iterator[ViewChange]:
    subject, pattern, permission = event.principal, event.resource, event.permission
    if (pattern, permission) not in state.grants.get(subject, {}):
        return iter(())
    state.delete_grant(subject, pattern, permission)
    effects.state.append(
        StateChange(GRANT_KIND, grant_state_key(subject, pattern, permission), None)
    )
    # The grant is gone from the state, but the holders are those it had: memberships are
    # unchanged by a revoke.
    return _fan_out(state, subject, pattern, permission, REMOVED)


def _add_member(
    state: TenantState, event: AddMemberEvent, effects: EventEffects
) -> Iterator[ViewChange]:
    group, member = event.group, event.member
    if state.has_member(group, member):
        return iter(())
    deltas = state.link(group, member)
    effects.state.append(StateChange(MEMBER_KIND, member_state_key(group, member), ""))
    return _emit_deltas(state, deltas, effects)


def _remove_member(
    state: TenantState, event: RemoveMemberEvent, effects: EventEffects
) -> Iterator[ViewChange]:
    group, member = event.group, event.member
    if not state.has_member(group, member):
        return iter(())
    deltas = state.unlink(group, member)
    effects.state.append(StateChange(MEMBER_KIND, member_state_key(group, member), None))
    return _emit_deltas(state, deltas, effects)


def _emit_deltas(
    state: TenantState, deltas: list[PathDelta], effects: EventEffects
) -> Iterator[ViewChange]:
    """Path rows that changed now; the sources of every group a holder gained or lost later."""
    gained: list[tuple[str, str]] = []
    lost: list[tuple[str, str]] = []
    for delta in deltas:
        if delta.old is None:
            gained.append((delta.holder, delta.group))
        elif delta.new is None:
            lost.append((delta.holder, delta.group))
        effects.paths.append(PathChange(delta.holder, delta.group, delta.new))
    return _subject_views(state, gained, lost)


def _subject_views(
    state: TenantState, gained: list[tuple[str, str]], lost: list[tuple[str, str]]
) -> Iterator[ViewChange]:
    """Each holder's rows together, holders in order (the change tracker relies on it)."""
    by_holder: dict[str, list[tuple[str, bool]]] = {}
    for pairs, remove in ((gained, False), (lost, True)):
        for holder, subject in pairs:
            by_holder.setdefault(holder, []).append((subject, remove))
    for holder in sorted(by_holder):
        for subject, remove in by_holder[holder]:
            yield from _subject_sources(state, holder, subject, remove=remove)


def _subject_sources(
    state: TenantState, holder: str, subject: str, *, remove: bool
) -> Iterator[ViewChange]:
    """Add or remove, on holder's rows, every source that subject's grants confer."""
    for (pattern, permission), expires in state.grants.get(subject, {}).items():
        source = source_key(subject, permission)
        value = REMOVED if remove else expires
        for action in state.actions_of(permission):
            yield ViewChange(holder, pattern, action, source, value)


def _set_role(
    state: TenantState, role: str, actions: frozenset[str], effects: EventEffects
) -> Iterator[ViewChange]:
    old = state.roles.get(role, frozenset())
    if old == actions:
        return iter(())
    if actions:
        state.roles[role] = actions
        effects.state.append(StateChange(ROLE_KIND, role, "\n".join(sorted(actions))))
    else:
        state.roles.pop(role, None)
        effects.state.append(StateChange(ROLE_KIND, role, None))
    return _role_views(state, role, actions - old, old - actions)


def _role_views(
    state: TenantState, role: str, added: frozenset[str], removed: frozenset[str]
) -> Iterator[ViewChange]:
    permission = f"role:{role}"
    for subject, pattern in sorted(state.role_grants.get(role, ())):
        expires = state.grants[subject][(pattern, permission)]
        source = source_key(subject, permission)
        for holder in state.holders_of(subject):
            for action in added:
                yield ViewChange(holder, pattern, action, source, expires)
            for action in removed:
                yield ViewChange(holder, pattern, action, source, REMOVED)


def load_state(rows: Iterable[tuple[str, str, str]], applied_offset: int) -> TenantState:
    """Rebuild a tenant's state from its persisted (kind, key, value) rows."""
    state = TenantState(applied_offset=applied_offset)
    for kind, key, value in rows:
        if kind == GRANT_KIND:
            subject, pattern, permission = key.split("\x1f")
            state.set_grant(subject, pattern, permission, int(value))
        elif kind == MEMBER_KIND:
            group, member = key.split("\x1f")
            state.add_member(group, member)
        elif kind == ROLE_KIND:
            state.roles[key] = frozenset(value.split("\n"))
    return state
