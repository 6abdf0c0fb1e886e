"""The pure projector against the independent reference model, over generated histories."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permstore.core.decisions import decide_from_state
from permstore.core.projector import project_batch, project_pieces, to_micros
from permstore.core.replay import dump_state, fold_event, load_snapshot
from permstore.core.state import TenantState
from permstore.schemas.events import parse_event
from tests.projection_sim import SimulatedViews, project_all, recorded
from tests.reference_model import ReferenceModel, ReferenceState, is_membership_chain
from tests.strategies import BASE, EXPIRY_OFFSETS, histories, recorded_times, universe

UNIVERSE = universe()


def check_times_after(last: datetime) -> list[datetime]:
    """Times at or after the last recorded event, around every expiry boundary."""
    one = timedelta(seconds=1)
    candidates = [last, last + timedelta(days=30)]
    for offset in EXPIRY_OFFSETS:
        candidates += [BASE + offset - one, BASE + offset, BASE + offset + one]
    return sorted({t for t in candidates if t >= last})


def assert_chain_is_a_path(
    state: ReferenceState, principal: str, subject: str, chain: tuple[str, ...] | None
) -> None:
    """A group reason names a real chain of direct memberships from principal to subject."""
    assert chain is not None and is_membership_chain(state, principal, subject, chain), (
        principal,
        subject,
        chain,
    )


def assert_views_match(events: list[dict[str, object]], views: SimulatedViews) -> None:
    times = recorded_times(len(events))
    reference = ReferenceModel(list(zip(events, times, strict=True)), default_tenant="acme")
    last = times[-1] if times else BASE
    memberships = reference.state_at(last)
    for at in check_times_after(last):
        for principal in UNIVERSE.principals:
            assert views.effective(principal, at) == reference.effective_permissions(
                principal, at
            ), (principal, at)
            for resource in UNIVERSE.resources:
                for action in UNIVERSE.actions:
                    expected = reference.allowed(principal, resource, action, at)
                    reasons = views.reasons(principal, resource, action, at)
                    assert bool(reasons) == expected, (principal, resource, action, at)
                    for reason in reasons:
                        if reason.subject == principal:
                            assert reason.chain is None
                        else:
                            assert_chain_is_a_path(
                                memberships, principal, reason.subject, reason.chain
                            )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=40))
def test_views_equal_reference_for_every_check(events: list[dict[str, object]]) -> None:
    """Every (principal, resource, action) of the universe answers as contract section 3."""
    views = project_all(recorded(events, recorded_times(len(events))))
    assert_views_match(events, views)
    final = views.load_state()
    for principal in UNIVERSE.principals:
        assert views.paths_of(principal) == final.paths_from(principal), principal


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=30), st.lists(st.integers(1, 7), min_size=1, max_size=12))
def test_batching_and_restarts_do_not_change_views(
    events: list[dict[str, object]], chunks: list[int]
) -> None:
    """Any batching, with state reloaded from persisted rows between batches, gives one result."""
    records = recorded(events, recorded_times(len(events)))
    whole = project_all(records)
    chunked = project_all(records, chunks)
    assert chunked.snapshot() == whole.snapshot()
    assert_views_match(events, chunked)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=30), st.integers(0, 29), st.integers(1, 10))
def test_redelivery_after_crash_is_harmless(
    events: list[dict[str, object]], crash_at: int, redeliver: int
) -> None:
    """A batch whose views were written but whose state was not is replayed to the same views."""
    records = recorded(events, recorded_times(len(events)))
    crash_at = min(crash_at, len(records))
    views = project_all(records[:crash_at])
    # The crashed batch: views written, state and position lost (never persisted).
    lost = records[crash_at : crash_at + redeliver]
    if lost:
        effects = project_batch(
            views.load_state(), lost, views.known_ids(r.event.event_id for r in lost)
        )
        for event_effects in effects.effects:
            event_effects.state.clear()
        applied_before = views.applied_offset
        views.write(effects)
        views.applied_offset = applied_before
    # Restart: the same records arrive again, then the rest.
    project_all(records[crash_at:], [redeliver, len(records)], views)
    assert views.snapshot() == project_all(records).snapshot()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=40), st.integers(-2, 45))
def test_point_in_time_fold_equals_reference(events: list[dict[str, object]], cut: int) -> None:
    """Folding the de-duplicated log up to a time answers as the reference at that time."""
    times = recorded_times(len(events))
    reference = ReferenceModel(list(zip(events, times, strict=True)), default_tenant="acme")
    at = BASE + timedelta(seconds=cut)
    state = TenantState()
    seen: set[str] = set()
    for event, moment in zip(events, times, strict=True):
        if moment > at or event["event_id"] in seen:
            continue
        seen.add(str(event["event_id"]))
        fold_event(state, parse_event(json.dumps(event)))
    state = load_snapshot(dump_state(state))
    memberships = reference.state_at(at)
    for principal in UNIVERSE.principals:
        for resource in UNIVERSE.resources:
            for action in UNIVERSE.actions:
                reasons = decide_from_state(state, principal, resource, action, to_micros(at))
                assert bool(reasons) == reference.allowed(principal, resource, action, at)
                for reason in reasons:
                    if reason.subject != principal:
                        assert_chain_is_a_path(memberships, principal, reason.subject, reason.chain)


@settings(max_examples=200, deadline=None)
@given(histories(max_events=40))
def test_state_entry_count_stays_exact(events: list[dict[str, object]]) -> None:
    """The O(1) size used to bound the processor's cache equals a full recount."""
    state = TenantState()
    for record in recorded(events, recorded_times(len(events))):
        fold_event(state, record.event)
        recount = sum(len(g) for g in state.grants.values()) + sum(
            len(m) for m in state.members.values()
        )
        assert state.entries == recount


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=30), st.integers(1, 6), st.integers(0, 40))
def test_pieces_write_the_same_views_and_a_crash_between_them_replays_exactly(
    events: list[dict[str, object]], max_rows: int, crash_after: int
) -> None:
    """Bounded pieces write what one batch writes; stopping after any piece and replaying
    from the persisted state (the piece's completed events only) ends in the same views."""
    records = recorded(events, recorded_times(len(events)))
    whole = project_all(records)
    views = SimulatedViews()
    pieces = project_pieces(views.load_state(), records, (), max_rows)
    for n, piece in enumerate(pieces):
        rows = sum(len(e.views) + len(e.paths) for e in piece.effects)
        assert rows <= max_rows
        views.write(piece)
        if n == crash_after:
            break
    state = views.load_state()
    rest = [r for r in records if r.offset > views.applied_offset]
    for piece in project_pieces(state, rest, views.known_ids(r.event.event_id for r in rest), 3):
        views.write(piece)
    assert views.snapshot() == whole.snapshot()
    assert_views_match(events, views)
