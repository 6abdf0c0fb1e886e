"""The API's position-checked view cache: an entry is served only at the position it was read."""

from __future__ import annotations

import gc

from cassandra.cqltypes import UTF8Type
from cassandra.util import OrderedMapSerializedKey
from hypothesis import given
from hypothesis import strategies as st

from permstore.adapters.cassandra_layout.encodings import Rows, compact_rows
from permstore.adapters.cassandra_layout.reader import PositionedCache
from permstore.core.consistency import LogPoint
from permstore.core.decisions import decide_from_rows


def test_entry_is_served_only_at_the_position_it_was_read() -> None:
    """Any applied event (a new position) invalidates it, whatever the partition."""
    cache: PositionedCache[str, list[int]] = PositionedCache("test", 10)
    cache.put("k", LogPoint(0, 5), [1])
    assert cache.get("k", LogPoint(0, 5)) == [1]
    assert cache.get("k", LogPoint(0, 6)) is None
    assert cache.get("k", LogPoint(1, 5)) is None
    assert cache.get("other", LogPoint(0, 5)) is None


def test_size_zero_turns_it_off() -> None:
    """With no entries allowed nothing is remembered."""
    cache: PositionedCache[str, int] = PositionedCache("test", 0)
    cache.put("k", LogPoint(0, 1), 1)
    assert cache.get("k", LogPoint(0, 1)) is None


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=300))
def test_bounded_and_never_serves_another_position(puts: list[tuple[int, int]]) -> None:
    """Whatever is stored, it holds at most its size and only answers the position stored."""
    cache: PositionedCache[int, int] = PositionedCache("test", 8)
    latest: dict[int, int] = {}
    for key, offset in puts:
        cache.put(key, LogPoint(0, offset), offset)
        latest[key] = offset
    served = 0
    for key in range(51):
        for offset in range(4):
            value = cache.get(key, LogPoint(0, offset))
            if value is not None:
                served += 1
                assert value == offset == latest[key]
    assert served <= 8


def test_cached_check_rows_leave_the_cycle_collector() -> None:
    """Rows as the driver returns them are compacted into tuples the collector stops tracking.

    Tracked cache entries made every full collection scan the whole cache (150-260 ms pauses
    under load, docs/performance.md); the compacted entry must keep the same decision.
    """
    sources = OrderedMapSerializedKey(UTF8Type, 4)
    sources._insert_unchecked("user:al|read", b"user:al|read", 0)
    sources._insert_unchecked("group:eng|role:editor", b"group:eng|role:editor", 7)
    driver_rows = [("doc:a", sources), ("doc:*", None)]
    rows = compact_rows(driver_rows)
    cache: PositionedCache[str, Rows] = PositionedCache("test", 4)
    cache.put("k", LogPoint(0, 5), rows)
    for _ in range(4):  # a pass may reach an outer tuple before its items are untracked
        gc.collect()
    cached = cache.get("k", LogPoint(0, 5))
    assert cached is not None and not gc.is_tracked(cached)
    as_maps = [(pattern, dict(found or {}).items()) for pattern, found in driver_rows]
    for now in (1, 7, 8):
        assert decide_from_rows("user:al", cached, now) == decide_from_rows("user:al", as_maps, now)
