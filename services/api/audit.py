"""Point-in-time state: the newest snapshot at or before a time, plus the events after it."""

from __future__ import annotations

import orjson

from permstore.adapters.cassandra_layout.encodings import decode_snapshot, month_of
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.core.replay import fold_fields
from permstore.core.state import TenantState

REPLAY_PAGE = 5000


async def state_at(reader: ViewReader, tenant: str, at_us: int) -> tuple[TenantState, int]:
    """The projector state after every event recorded up to at_us; returns (state, replayed)."""
    snapshot = await reader.latest_snapshot(tenant, at_us)
    state = TenantState()
    after = (-1, -1)
    if snapshot is not None:
        recorded_at, offset, blob = snapshot
        state = decode_snapshot(blob)
        after = (recorded_at, offset)
    replayed = 0
    last_month = month_of(at_us)
    for month in await reader.months(tenant):
        if month > last_month:
            break
        if after[0] >= 0 and month < month_of(after[0]):
            continue
        while True:
            rows = await reader.log_page(tenant, month, after, at_us, REPLAY_PAGE)
            for row in rows:
                body = orjson.loads(row.event)
                fold_fields(state, body["type"], body)
                after = (row.recorded_at, row.offset)
            replayed += len(rows)
            if len(rows) < REPLAY_PAGE:
                break
    return state, replayed
