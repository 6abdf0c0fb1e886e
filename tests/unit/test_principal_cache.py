"""The principal view cache never answers with rows older than the point a request needs.

A small model of the protocol drives the real ViewCache through generated interleavings: the
processor writes rows, publishes a touch and then moves the position (in that order, as
`ViewWriter.write_all`); the follower consumes touches late or restarts from the end; readers
read a position (possibly an older shared one), take a ticket, read rows and store them any
number of steps later. Every hit must hold rows at least as new as the requested point's.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from permstore.adapters.cassandra_layout.view_cache import ViewCache
from permstore.core.consistency import LogPoint

TENANT = "t"
PRINCIPALS = ["a", "b", "c"]


@dataclass
class Model:
    """The store, the touch topic and the follower's cache, advanced one step at a time."""

    cache: ViewCache
    offset: int = -1
    position: int = -1
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRINCIPALS, 0))
    history: list[dict[str, int]] = field(default_factory=list)
    topic: deque[tuple[list[str], int | None]] = field(default_factory=deque)
    pending: list[tuple[str, LogPoint, int, int]] = field(default_factory=list)
    stage: int = 0
    touched_now: list[str] = field(default_factory=list)
    hits: int = 0

    def truth_at(self, point: LogPoint, principal: str) -> int:
        """The principal's version once every event up to point is applied."""
        return self.history[point.offset][principal] if point.offset >= 0 else 0

    def processor_step(self, touched: list[str]) -> None:
        """One step of the write path: rows, then the touch, then the position."""
        if self.stage == 0:
            self.offset += 1
            self.touched_now = touched
            for principal in touched:
                self.versions[principal] += 1
            self.history.append(dict(self.versions))
            self.stage = 1
        elif self.stage == 1:
            self.topic.append((self.touched_now, self.offset))
            self.stage = 2
        else:
            self.position = self.offset
            self.stage = 0

    def follower_step(self) -> None:
        if self.topic:
            principals, at = self.topic.popleft()
            self.cache.touched(TENANT, principals, None if at is None else LogPoint(0, at))

    def follower_restart(self) -> None:
        """The follower lost its place: it resumes at the topic's end and resets the cache."""
        self.topic.clear()
        self.cache.reset()

    def start_read(self, principal: str, staleness: int) -> None:
        """A request reads a position (a shared one may be older), then the store, later."""
        seen = max(-1, self.position - staleness)
        point = LogPoint(0, seen)
        entry = self.cache.lookup(TENANT, principal, point)
        if entry is not None:
            assert entry.view is not None
            [(held, _)] = entry.view
            assert int(held) >= self.truth_at(point, principal), "stale hit"
            self.hits += 1
            return
        ticket = self.cache.ticket()
        self.pending.append((principal, point, ticket, self.versions[principal]))

    def finish_read(self, index: int) -> None:
        if self.pending:
            principal, point, ticket, version = self.pending.pop(index % len(self.pending))
            view = {(str(version), "read"): ()}
            self.cache.store(TENANT, principal, point, ticket, view=view)


# Restarts are rare and writes common, so entries live long enough to be tested by writes.
step = st.one_of(
    st.tuples(st.just("write"), st.lists(st.sampled_from(PRINCIPALS), max_size=2, unique=True)),
    st.tuples(st.just("write"), st.lists(st.sampled_from(PRINCIPALS), max_size=2, unique=True)),
    st.tuples(st.just("write"), st.lists(st.sampled_from(PRINCIPALS), max_size=2, unique=True)),
    st.tuples(st.just("follow"), st.none()),
    st.tuples(st.just("read"), st.tuples(st.sampled_from(PRINCIPALS), st.integers(0, 2))),
    st.tuples(st.just("read"), st.tuples(st.sampled_from(PRINCIPALS), st.integers(0, 2))),
    st.tuples(st.just("store"), st.integers(0, 5)),
)
steps_with_rare_restarts = st.lists(
    st.one_of(step, step, step, step, step, step, step, step, st.just(("restart", None))),
    max_size=120,
)


@settings(max_examples=1000, deadline=None)
@given(steps_with_rare_restarts, st.integers(2, 10))
def test_no_interleaving_gives_a_stale_hit(steps: list[tuple[str, object]], rows: int) -> None:
    """Hits hold rows at least as new as the point asked for, whatever the order of steps."""
    model = Model(ViewCache(rows))
    for kind, argument in steps:
        if kind == "write":
            assert isinstance(argument, list)
            model.processor_step(argument)
        elif kind == "follow":
            model.follower_step()
        elif kind == "restart":
            model.follower_restart()
        elif kind == "read":
            assert isinstance(argument, tuple)
            model.start_read(*argument)
        else:
            assert isinstance(argument, int)
            model.finish_read(argument)


def test_a_followed_tenant_hits_after_writes_to_other_principals() -> None:
    """Writes that touch b leave a's entry usable at the newer point: the cache's purpose."""
    cache = ViewCache(100)
    cache.reset()
    ticket = cache.ticket()
    cache.store(TENANT, "a", LogPoint(0, 5), ticket, view={("doc:x", "read"): (("g1", -1),)})
    cache.touched(TENANT, ["b"], LogPoint(0, 6))
    entry = cache.lookup(TENANT, "a", LogPoint(0, 6))
    assert entry is not None and entry.rows_for(["doc:x", "doc:*"], "doc:x", "read") == (
        ("doc:x", (("g1", -1),)),
    )
    # Not yet followed to 7: only what the entry itself covers.
    assert cache.lookup(TENANT, "a", LogPoint(0, 7)) is None
    cache.touched(TENANT, ["a"], LogPoint(0, 7))
    assert cache.lookup(TENANT, "a", LogPoint(0, 7)) is None
    assert cache.lookup(TENANT, "a", LogPoint(0, 5)) is None, "a touched entry is gone"


def test_a_read_that_raced_a_touch_is_not_stored() -> None:
    """A touch arriving between the ticket and the store means the rows may predate it."""
    cache = ViewCache(100)
    ticket = cache.ticket()
    cache.touched(TENANT, ["z"], None)
    cache.store(TENANT, "a", LogPoint(0, 1), ticket, view={})
    assert len(cache) == 0
    cache.store(TENANT, "a", LogPoint(0, 1), cache.ticket(), view={})
    assert len(cache) == 1


def test_rows_bound_the_cache_and_off_stores_nothing() -> None:
    """Entries cost their rows plus one; the least recently used go first; 0 is off."""
    cache = ViewCache(10)
    view = {(f"doc:{i}", "read"): () for i in range(4)}
    for principal in "abc":
        cache.store(TENANT, principal, LogPoint(0, 1), cache.ticket(), view=view)
    assert cache.rows <= 10 and len(cache) == 2
    assert cache.lookup(TENANT, "a", LogPoint(0, 1)) is None
    off = ViewCache(0)
    off.store(TENANT, "a", LogPoint(0, 1), off.ticket(), view=view)
    assert off.lookup(TENANT, "a", LogPoint(0, 1)) is None


def test_partial_entries_keep_answers_and_paths() -> None:
    """A principal too large to hold whole keeps the answers asked, and its paths, together."""
    cache = ViewCache(100)
    point = LogPoint(0, 3)
    cache.store(TENANT, "a", point, cache.ticket(), answers={("doc:x", "read"): ()})
    cache.store(TENANT, "a", point, cache.ticket(), paths={"group:g": "a"})
    entry = cache.lookup(TENANT, "a", point)
    assert entry is not None
    assert entry.rows_for(["doc:x"], "doc:x", "read") == ()
    assert entry.rows_for(["doc:y"], "doc:y", "read") is None
    assert entry.paths == {"group:g": "a"} and entry.size() == 2


def random_walk(seed: int, length: int = 120) -> Model:
    """One seeded interleaving, weighted towards writes and reads."""
    rng = random.Random(seed)
    model = Model(ViewCache(rng.randrange(2, 11)))
    for _ in range(length):
        kind = rng.choices(["write", "follow", "restart", "read", "store"], [6, 2, 0.2, 3, 2])[0]
        if kind == "write":
            model.processor_step(rng.sample(PRINCIPALS, rng.randrange(3)))
        elif kind == "follow":
            model.follower_step()
        elif kind == "restart":
            model.follower_restart()
        elif kind == "read":
            model.start_read(rng.choice(PRINCIPALS), rng.randrange(3))
        else:
            model.finish_read(rng.randrange(6))
    return model


def test_many_seeded_interleavings_give_no_stale_hit_and_some_hits() -> None:
    """Thousands of weighted walks (hypothesis finds rare orders; these cover common ones),
    and the cache does answer in them: a cache that never hits would pass vacuously."""
    hits = sum(random_walk(seed).hits for seed in range(3000))
    assert hits > 3000
