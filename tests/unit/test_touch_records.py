"""Touch records: what a written piece tells the API workers' caches, and how they read it."""

from __future__ import annotations

from typing import cast

import orjson
import pytest

from permstore.adapters.cassandra_layout.view_cache import ViewCache
from permstore.adapters.view_updates import (
    PRINCIPALS_PER_RECORD,
    apply_touch,
    decode_touch,
    touch_records,
)
from permstore.core.consistency import LogPoint
from permstore.core.events import Event
from permstore.core.projector import (
    BatchEffects,
    EventEffects,
    PathChange,
    RecordedEvent,
    ViewChange,
)


def effects(principals: list[str], paths: list[str], offset: int | None) -> BatchEffects:
    """A piece whose one event touched principals' views and paths' membership paths."""
    views = [ViewChange(p, "doc:x", "read", "src", -1) for p in principals]
    moved = [PathChange(p, "group:g", "group:g") for p in paths]
    found = BatchEffects(effects=[EventEffects(offset or 0, views=views, paths=moved)])
    if offset is not None:
        # The point is the newest offset the piece saw; only the offset is read.
        found.duplicates.append(RecordedEvent(cast(Event, None), offset, 0))
    return found


def test_a_piece_names_every_touched_principal_once_and_its_point() -> None:
    """Views and membership paths both count; the point is the piece's last offset."""
    [(tenant, body)] = touch_records(3, [("t", 5, effects(["user:b", "user:a"], ["user:a"], 9))])
    touch = decode_touch(body)
    assert tenant == "t" and touch.generation == 3 and touch.tenant == "t"
    assert touch.principals == ["user:a", "user:b"]
    assert touch.applied == LogPoint(5, 9)


def test_a_piece_inside_an_event_has_no_point_and_a_large_one_is_split() -> None:
    """Only the last record of a piece carries the point; records stay small."""
    many = [f"user:u{i:05d}" for i in range(PRINCIPALS_PER_RECORD + 10)]
    records = [decode_touch(b) for _, b in touch_records(1, [("t", 0, effects(many, [], 4))])]
    assert [len(r.principals) for r in records] == [PRINCIPALS_PER_RECORD, 10]
    assert [r.applied for r in records] == [None, LogPoint(0, 4)]
    assert list(touch_records(1, [("t", 0, effects([], [], None))])) == []
    [(_, mid)] = touch_records(1, [("t", 0, effects(["user:a"], [], None))])
    assert decode_touch(mid).applied is None


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", orjson.dumps({"g": 1, "t": "t", "p": "x", "at": [1]})]
)
def test_anything_else_is_refused(body: bytes) -> None:
    """The follower resets its cache on such a record (it may have missed a touch)."""
    with pytest.raises(ValueError, match="not a touch record"):
        decode_touch(body)


def test_touches_of_another_generation_change_nothing() -> None:
    """A rebuild's processor publishes too; workers reading another generation ignore it."""
    cache = ViewCache(100)
    cache.store("t", "user:a", LogPoint(0, 1), cache.ticket(), view={})
    [(_, body)] = touch_records(2, [("t", 0, effects(["user:a"], [], 7))])
    apply_touch(cache, 1, decode_touch(body))
    assert cache.lookup("t", "user:a", LogPoint(0, 1)) is not None
    assert cache.lookup("t", "user:a", LogPoint(0, 7)) is None
    apply_touch(cache, 2, decode_touch(body))
    assert cache.lookup("t", "user:a", LogPoint(0, 1)) is None
