"""The incremental closure against a fresh sorted breadth-first search and the reference model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permstore.core.closure import Closure, PathDelta
from permstore.core.state import TenantState, chain_to
from tests.reference_model import ReferenceState, is_membership_chain, subjects_of

NODES = ["user:a", "user:b", "group:a", "group:b", "group:c", "group:d", "group:e", "group:f"]
GROUPS = [n for n in NODES if n.startswith("group:")]

Op = tuple[bool, str, str]  # (add?, group, member)

ops = st.lists(
    st.tuples(st.booleans(), st.sampled_from(GROUPS), st.sampled_from(NODES)), max_size=60
)


def expected_paths(state: TenantState) -> dict[str, dict[str, str]]:
    """Every holder's paths by a fresh search over the current edges."""
    holders = set(state.groups_of)
    return {h: p for h in sorted(holders) if (p := state.paths_from(h))}


def check_against_reference(state: TenantState, reference: ReferenceState) -> None:
    """Reached groups are the reference's subjects; each chain is a real shortest chain."""
    closure = state.closure()
    for holder in NODES:
        via = closure.via_map(holder)
        assert set(via) | {holder} == subjects_of(reference, holder) | {holder}, holder
        for group, (depth, _, _) in closure.reach.get(holder, {}).items():
            chain = chain_to(via, holder, group)
            assert chain is not None and len(chain) == depth
            assert is_membership_chain(reference, holder, group, chain)


def apply(state: TenantState, reference: ReferenceState, op: Op) -> list[PathDelta] | None:
    """Apply one op as the projector does (only real edge changes reach the closure)."""
    add, group, member = op
    if add:
        reference.memberships.add((group, member))
        if state.has_member(group, member):
            return None
        return state.link(group, member)
    reference.memberships.discard((group, member))
    if not state.has_member(group, member):
        return None
    return state.unlink(group, member)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_closure_equals_fresh_search_after_every_edge(history: list[Op]) -> None:
    state = TenantState()
    reference = ReferenceState()
    state.closure()
    for op in history:
        old = expected_paths(state)
        deltas = apply(state, reference, op)
        new = expected_paths(state)
        closure = state.closure()
        assert {h: closure.via_map(h) for h in closure.reach} == new, op
        assert closure.entries == sum(len(p) for p in new.values())
        if deltas is None:
            continue
        changed = {
            (h, g): (old.get(h, {}).get(g), new.get(h, {}).get(g))
            for h in old.keys() | new.keys()
            for g in old.get(h, {}).keys() | new.get(h, {}).keys()
            if old.get(h, {}).get(g) != new.get(h, {}).get(g)
        }
        assert {(d.holder, d.group): (d.old, d.new) for d in deltas} == changed, op
        assert len(deltas) == len(changed)
    check_against_reference(state, reference)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 40), st.data())
def test_long_chains_and_cycles_stay_exact(length: int, data: st.DataObject) -> None:
    """A chain built link by link, closed into a cycle, shortcut and cut at random links."""
    state = TenantState()
    reference = ReferenceState()
    names = [f"group:g{i:02d}" for i in range(length)]
    history: list[Op] = [(True, names[0], "user:u")]
    history += [(True, names[i + 1], names[i]) for i in range(length - 1)]
    history.append((True, names[0], names[-1]))
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, length - 1))
        j = data.draw(st.integers(0, length - 1))
        history.append((data.draw(st.booleans()), names[i], names[j]))
    for op in history:
        apply(state, reference, op)
        closure = state.closure()
        assert {h: closure.via_map(h) for h in closure.reach} == expected_paths(state), op
    check_against_reference(state, reference)


def test_rebuilt_closure_equals_the_repaired_one() -> None:
    """A closure built from loaded edges equals the one repaired edge by edge."""
    state = TenantState()
    for i in range(30):
        state.link(f"group:g{i + 1}", f"group:g{i}")
        state.link(f"group:g{(i * 7) % 31}", f"group:g{i}")
    state.unlink("group:g10", "group:g9")
    built = Closure.build(state.groups_of, state.members)
    assert built.reach == state.closure().reach
