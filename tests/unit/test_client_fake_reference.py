"""The in-memory permstore, over its HTTP contract, against the independent reference model."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permstore_client.testing import InMemoryPermstore, fake_client

from permstore.core.projector import to_micros
from tests.reference_model import ReferenceModel
from tests.strategies import BASE, EXPIRY_OFFSETS, histories, recorded_times, universe

UNIVERSE = universe()
CHECKS = [
    (principal, resource, action)
    for principal in UNIVERSE.principals
    for resource in UNIVERSE.resources
    for action in UNIVERSE.actions
]


class Clock:
    """A settable clock: recorded times while writing, the check time while reading."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> int:
        return to_micros(self.now)


def load(events: list[dict[str, object]]) -> tuple[Clock, InMemoryPermstore, ReferenceModel]:
    """Publish a history through the fake's HTTP contract, event i recorded at BASE + i s."""
    clock = Clock()
    store = InMemoryPermstore(clock=clock)
    times = recorded_times(len(events))
    with fake_client(store, tenant="acme") as client:
        for event, moment in zip(events, times, strict=True):
            clock.now = moment
            client.publish([event])
    return (
        clock,
        store,
        ReferenceModel(list(zip(events, times, strict=True)), default_tenant="acme"),
    )


def times_after(last: datetime) -> list[datetime]:
    one = timedelta(seconds=1)
    found = [last, last + timedelta(days=30)]
    for offset in EXPIRY_OFFSETS:
        found += [BASE + offset - one, BASE + offset, BASE + offset + one]
    return sorted({t for t in found if t >= last})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=30))
def test_fake_checks_and_lists_equal_the_reference(events: list[dict[str, object]]) -> None:
    clock, store, reference = load(events)
    last = recorded_times(len(events))[-1] if events else BASE
    with fake_client(store, tenant="acme") as client:
        for at in times_after(last):
            clock.now = at
            answers = client.check_batch(CHECKS).results
            for (principal, resource, action), answer in zip(CHECKS, answers, strict=True):
                expected = reference.allowed(principal, resource, action, at)
                assert answer.allowed == expected, (principal, resource, action, at)
                assert bool(answer.reasons) == expected
            for principal in UNIVERSE.principals:
                listed = {(p.resource, p.action) for p in client.permissions(principal, limit=7)}
                assert listed == reference.effective_permissions(principal, at), (principal, at)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=30), st.integers(-2, 32), st.data())
def test_fake_point_in_time_equals_the_reference(
    events: list[dict[str, object]], second: int, data: st.DataObject
) -> None:
    clock, store, reference = load(events)
    at = BASE + timedelta(seconds=second, milliseconds=500 * data.draw(st.integers(0, 1)))
    clock.now = BASE + timedelta(days=60)
    with fake_client(store, tenant="acme") as client:
        for principal, resource, action in data.draw(
            st.lists(st.sampled_from(CHECKS), min_size=1, max_size=20)
        ):
            answer = client.audit_check(principal, resource, action, at.isoformat())
            assert answer.allowed == reference.allowed(principal, resource, action, at)
