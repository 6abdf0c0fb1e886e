"""An in-memory stand-in for the view tables, applying ViewChanges with Cassandra's rules.

Used only by unit tests of the pure projector (integration tests use real Cassandra).
Cells are last-write-wins by write timestamp; on a tie a deletion wins, as in Cassandra.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from permstore.core.decisions import Reason, decide_from_rows, is_live, with_chains
from permstore.core.identifiers import patterns_matching
from permstore.core.projector import (
    REMOVED,
    BatchEffects,
    RecordedEvent,
    StateChange,
    load_state,
    project_batch,
    to_micros,
)
from permstore.core.state import TenantState
from permstore.schemas.events import parse_event

Cell = tuple[str, str, str, str]  # principal, pattern, action, source


class SimulatedViews:
    """Map cells and projector-state rows with write timestamps."""

    def __init__(self) -> None:
        self.cells: dict[Cell, tuple[int, int]] = {}  # -> (ts, expires or REMOVED)
        self.state_rows: dict[tuple[str, str], tuple[int, str | None]] = {}
        self.paths: dict[tuple[str, str], tuple[int, str | None]] = {}  # (principal, group)
        self.applied_offset = -1

    def write(self, effects: BatchEffects) -> None:
        """Apply a batch's view and state writes, asserting one write per cell per event."""
        for event_effects in effects.effects:
            ts = event_effects.offset + 1
            seen: set[Cell] = set()
            for change in event_effects.views:
                cell = (change.principal, change.pattern, change.action, change.source)
                assert cell not in seen, f"event at {event_effects.offset} wrote {cell} twice"
                seen.add(cell)
                self._put(cell, ts, change.expires)
            for state_change in event_effects.state:
                self._put_state(state_change, ts)
            for path in event_effects.paths:
                key = (path.principal, path.group)
                old_path = self.paths.get(key)
                if old_path is None or ts > old_path[0] or (ts == old_path[0] and path.via is None):
                    self.paths[key] = (ts, path.via)
        last = effects.last_offset()
        if last is not None:
            self.applied_offset = max(self.applied_offset, last)

    def _put(self, cell: Cell, ts: int, value: int) -> None:
        old = self.cells.get(cell)
        if old is None or ts > old[0] or (ts == old[0] and value == REMOVED):
            self.cells[cell] = (ts, value)

    def _put_state(self, change: StateChange, ts: int) -> None:
        key = (change.kind, change.key)
        old = self.state_rows.get(key)
        if old is None or ts > old[0] or (ts == old[0] and change.value is None):
            self.state_rows[key] = (ts, change.value)

    def load_state(self) -> TenantState:
        """What the processor would load after a restart."""
        rows = [(k, key, v) for (k, key), (_, v) in self.state_rows.items() if v is not None]
        return load_state([r for r in rows if r[0] != "event"], self.applied_offset)

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Event ids already recorded."""
        return {i for i in ids if self.state_rows.get(("event", i), (0, None))[1] is not None}

    def rows(
        self, principal: str, resource: str, action: str
    ) -> list[tuple[str, list[tuple[str, int]]]]:
        """The rows a check reads."""
        table: dict[tuple[str, str, str], dict[str, int]] = {}
        for (p, pat, a, src), (_, exp) in self.cells.items():
            if exp != REMOVED:
                table.setdefault((p, pat, a), {})[src] = exp
        return [
            (pattern, list(table[(principal, pattern, action)].items()))
            for pattern in patterns_matching(resource)
            if (principal, pattern, action) in table
        ]

    def allowed(self, principal: str, resource: str, action: str, at: datetime) -> bool:
        """The check answer from the views."""
        return bool(self.reasons(principal, resource, action, at))

    def reasons(self, principal: str, resource: str, action: str, at: datetime) -> list[Reason]:
        """The check's reasons from the views, with membership chains as the API adds them."""
        rows = self.rows(principal, resource, action)
        return with_chains(
            decide_from_rows(principal, rows, to_micros(at)), self.paths_of(principal)
        )

    def paths_of(self, principal: str) -> dict[str, str]:
        """The principal's membership path rows: group -> the member it is entered through."""
        return {
            group: via
            for (p, group), (_, via) in self.paths.items()
            if p == principal and via is not None
        }

    def effective(self, principal: str, at: datetime) -> set[tuple[str, str]]:
        """(pattern, action) pairs the principal holds at a time."""
        now = to_micros(at)
        return {
            (pat, a)
            for (p, pat, a, _), (_, exp) in self.cells.items()
            if p == principal and exp != REMOVED and is_live(exp, now)
        }

    def snapshot(self) -> tuple[dict[Cell, int], dict[tuple[str, str], str]]:
        """Live cells and path rows with their values, ignoring timestamps."""
        cells = {cell: exp for cell, (_, exp) in self.cells.items() if exp != REMOVED}
        paths = {key: via for key, (_, via) in self.paths.items() if via is not None}
        return cells, paths


def recorded(events: list[dict[str, Any]], times: list[datetime]) -> list[RecordedEvent]:
    """Events as the processor sees them: parsed, with offsets 0.. and recorded times."""
    return [
        RecordedEvent(parse_event(json.dumps(e)), offset, to_micros(t))
        for offset, (e, t) in enumerate(zip(events, times, strict=True))
    ]


def project_all(
    records: list[RecordedEvent], chunks: Iterable[int] = (), views: SimulatedViews | None = None
) -> SimulatedViews:
    """Project records in batches of the given sizes, reloading state between batches."""
    views = views or SimulatedViews()
    sizes = list(chunks) or [len(records)]
    start = 0
    while start < len(records):
        size = max(1, sizes[0] if sizes else len(records))
        sizes = sizes[1:]
        batch = records[start : start + size]
        state = views.load_state()
        effects = project_batch(state, batch, views.known_ids(r.event.event_id for r in batch))
        views.write(effects)
        start += size
    return views
