"""Effective-permission changes (contract section 6) against the independent reference model."""

from __future__ import annotations

from unittest.mock import patch

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permstore.core.changes import AFTER_EVENT, ChangeTracker, EventChanges, change_page
from permstore.core.consistency import START, LogPoint, decode_change_point
from permstore.core.projector import ViewChange, project_pieces, to_micros
from permstore.core.state import NEVER, TenantState
from permstore.schemas.events import parse_event
from tests.projection_sim import recorded
from tests.reference_model import ReferenceState, apply_event, effective_rows
from tests.strategies import histories, recorded_times, universe

UNIVERSE = universe()
Effective = dict[tuple[str, str], int]


def effective_map(state: ReferenceState, principal: str) -> Effective:
    """(pattern, action) -> effective expiry (µs) of every row rules 1-3 put on principal."""
    return {row: to_micros(expires) for row, expires in effective_rows(state, principal).items()}


def expected_changes(
    events: list[dict[str, object]],
) -> dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]]:
    """offset -> principal -> (added, removed), by diffing the reference model's maps."""
    named = {str(e[f]) for e in events for f in ("principal", "group", "member") if f in e}
    principals = sorted(named | set(UNIVERSE.principals))
    state = ReferenceState()
    seen: set[str] = set()
    out: dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]] = {}
    for offset, event in enumerate(events):
        if event["event_id"] in seen:
            continue
        seen.add(str(event["event_id"]))
        before = {p: effective_map(state, p) for p in principals}
        apply_event(state, event)
        for principal in principals:
            old, new = before[principal], effective_map(state, principal)
            added = sorted(
                (pattern, action, expires)
                for (pattern, action), expires in new.items()
                if old.get((pattern, action)) != expires
            )
            removed = sorted(row for row in old if row not in new)
            if added or removed:
                out.setdefault(offset, {})[principal] = (added, removed)
    return out


def tracked(events: list[dict[str, object]], max_rows: int) -> list[EventChanges]:
    records = recorded(events, recorded_times(len(events)))
    found: list[EventChanges] = []
    for piece in project_pieces(TenantState(), records, (), max_rows, track_changes=True):
        found.extend(piece.changes)
    return found


def as_expected(
    found: list[EventChanges],
) -> dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]]:
    """offset -> principal -> (added, removed), merging the runs an event was handed out in;
    each principal appears once per event and seqs run on from run to run."""
    out: dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]] = {}
    for change in found:
        event = out.setdefault(change.offset, {})
        assert change.first_seq == len(event)
        for p in change.principals:
            assert p.principal not in event
            event[p.principal] = (list(p.added), list(p.removed))
    return out


@given(histories(max_events=30), st.integers(1, 7))
def test_changes_are_the_reference_model_diff_of_every_event(
    events: list[dict[str, object]], max_rows: int
) -> None:
    """Every applied event's changes are exactly what the reference model's effective sets
    gained, lost or changed the expiry of, however the event is split into pieces."""
    found = tracked(events, max_rows)
    assert as_expected(found) == expected_changes(events)
    for change in found:
        assert all(p.added or p.removed for p in change.principals)
    by_offset: dict[int, list[str]] = {}
    for change in found:
        by_offset.setdefault(change.offset, []).extend(p.principal for p in change.principals)
    # In principal order across the runs: a replay numbers every record the same way.
    assert all(names == sorted(names) for names in by_offset.values())


def event(n: int, kind: str, **body: object) -> dict[str, object]:
    return {
        "type": kind,
        "tenant": "acme",
        "event_id": f"e{n}",
        "actor": "user:admin",
        "occurred_at": "2026-01-01T00:00:00Z",
        **body,
    }


def test_a_second_source_keeps_the_row_and_a_renewal_moves_its_expiry() -> None:
    """Revoking one of two sources of a row changes nothing; renewing a grant with another
    expiry lists the row as added with the new expiry; a group and its members both change."""
    events = [
        event(0, "add_member", group="group:eng", member="user:ann"),
        event(1, "grant", principal="group:eng", resource="doc:a", permission="read"),
        event(2, "grant", principal="user:ann", resource="doc:a", permission="read"),
        event(3, "revoke", principal="group:eng", resource="doc:a", permission="read"),
        event(
            4,
            "grant",
            principal="user:ann",
            resource="doc:a",
            permission="read",
            expires_at="2030-01-01T00:00:00Z",
        ),
    ]
    by_offset = as_expected(tracked(events, 1000))
    assert by_offset[1] == {
        "group:eng": ([("doc:a", "read", NEVER)], []),
        "user:ann": ([("doc:a", "read", NEVER)], []),
    }
    assert 2 not in by_offset  # ann already held doc:a read through the group
    assert by_offset[3] == {"group:eng": ([], [("doc:a", "read")])}
    (renewed,) = by_offset[4]["user:ann"][0]
    assert renewed[:2] == ("doc:a", "read") and renewed[2] > 0
    assert by_offset == expected_changes(events)


@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=12),
    st.integers(1, 5),
    st.integers(0, 3),
)
def test_following_next_reads_every_stored_record_once(
    sizes: list[int], limit: int, gap: int
) -> None:
    """Records of events of any size, paged with any limit: following next (cursors inside an
    event included) yields each record exactly once, in order, and then the current point."""
    tenant = "acme"
    stored = [
        (offset * (gap + 1), seq, f"{offset}/{seq}")
        for offset, size in enumerate(sizes)
        for seq in range(size)
    ]
    current = LogPoint(3, max((o for o, _, _ in stored), default=0) + gap)

    def after(point: LogPoint, seq: int | None) -> list[tuple[int, int, str]]:
        bound = (point.offset, AFTER_EVENT if seq is None else seq)
        return [r for r in stored if (r[0], r[1]) > bound][: limit + 1]

    position: tuple[LogPoint, int | None] = (START, None)
    seen: list[str] = []
    for _ in range(len(stored) + 2):
        items, following = change_page(tenant, current, position, after(*position), limit)
        seen.extend(record for _, record in items)
        position = decode_change_point(tenant, following)
        if not items:
            break
    assert seen == [record for _, _, record in stored]
    assert position == (current, None)


def test_a_large_fan_out_hands_its_records_out_piece_by_piece() -> None:
    """Nesting a group of 300 users into a group of 3 grants, in pieces of 100 rows: the
    records leave with the pieces that hold their rows, numbered on, and the tracker never
    holds more than one principal's rows."""
    events = [event(n, "add_member", group="group:big", member=f"user:u{n:03}") for n in range(300)]
    events += [
        event(300 + j, "grant", principal="group:top", resource=f"doc:d{j}", permission="read")
        for j in range(3)
    ]
    events.append(event(303, "add_member", group="group:top", member="group:big"))
    records = recorded(events, recorded_times(len(events)))
    state = TenantState()
    for _ in project_pieces(state, records[:-1], (), 1000, track_changes=True):
        pass
    held: list[int] = []
    original = ChangeTracker.note

    def spying(tracker: ChangeTracker, change: ViewChange) -> None:
        original(tracker, change)
        held.append(sum(len(rows) for rows in tracker._rows.values()))

    with patch.object(ChangeTracker, "note", spying):
        pieces = list(project_pieces(state, records[-1:], (), 100, track_changes=True))
    assert max(held) <= 3
    runs = [change for piece in pieces for change in piece.changes]
    # 903 view rows and 301 path rows (every holder now reaches group:top), 100 a piece.
    assert len(pieces) == 13 and len(runs) >= 9
    assert [run.first_seq for run in runs] == [
        sum(len(r.principals) for r in runs[:i]) for i in range(len(runs))
    ]
    principals = [p.principal for run in runs for p in run.principals]
    assert principals == sorted(principals) and len(principals) == 301  # the users and big


def test_view_changes_out_of_principal_order_are_refused() -> None:
    """The streaming tracker judges a principal when the next starts: a principal coming back
    would have been judged on part of its rows, so it is an error, never a wrong record."""
    tracker = ChangeTracker(
        TenantState(),
        parse_event(
            orjson.dumps(event(0, "grant", principal="user:b", resource="doc:a", permission="read"))
        ),
        streaming=True,
    )
    tracker.note(ViewChange("user:b", "doc:a", "read", "user:b|read", NEVER))
    with pytest.raises(RuntimeError, match="principal order"):
        tracker.note(ViewChange("user:a", "doc:a", "read", "user:b|read", NEVER))
