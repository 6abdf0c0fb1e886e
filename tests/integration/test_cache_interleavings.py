"""Checks served from each API worker's principal cache follow every write exactly.

Generated histories are written through the real API in small steps, with reads of every
(principal, resource, action) of the universe between them, so most principals are cached when
the next step lands: answers and their granting sources must equal the independent reference
model at that step, both for reads naming the write's token and for token-less reads once the
view has applied it (ADR 0017).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permstore_client import PermstoreClient

from tests.integration.test_pipeline_reference import shift_history
from tests.reference_model import (
    ReferenceModel,
    pattern_matches,
    permission_confers,
    subjects_of,
    unexpired,
)
from tests.strategies import histories, universe

pytestmark = pytest.mark.integration
UNIVERSE = universe()
TRIPLES = [
    (p, r, a) for p in UNIVERSE.principals for r in UNIVERSE.resources for a in UNIVERSE.actions
]
Grant = tuple[str, str, str]


def granting(reference: ReferenceModel, at: datetime) -> dict[tuple[str, str, str], set[Grant]]:
    """(principal, resource, action) -> the grants that allow it at a moment, by the reference."""
    state = reference.state_at(at)
    found: dict[tuple[str, str, str], set[Grant]] = {}
    for principal, resource, action in TRIPLES:
        subjects = subjects_of(state, principal)
        found[(principal, resource, action)] = {
            (subject, pattern, permission)
            for (subject, pattern, permission), expires_at in state.grants.items()
            if subject in subjects
            and pattern_matches(pattern, resource)
            and permission_confers(state, permission, action)
            and unexpired(expires_at, at)
        }
    return found


def assert_answers(
    client: PermstoreClient, recorded: list[tuple[dict[str, Any], datetime]], token: str | None
) -> None:
    """A batch over the universe equals the reference after the recorded events."""
    reference = ReferenceModel(recorded) if recorded else None
    before = datetime.now(UTC)
    results = client.check_batch(TRIPLES, at_least=token).results
    after = datetime.now(UTC)
    if reference is None:
        assert not any(r.allowed for r in results)
        return
    expected, later = granting(reference, before), granting(reference, after)
    for triple, result in zip(TRIPLES, results, strict=True):
        if expected[triple] != later[triple]:
            continue  # an expiry fell inside the call; either answer is right
        found = {(r.grant.principal, r.grant.resource, r.grant.permission) for r in result.reasons}
        assert result.allowed == bool(expected[triple]), (triple, result.reasons)
        assert found == expected[triple], triple


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories(max_events=24), steps=st.lists(st.integers(1, 4), min_size=24))
def test_cached_answers_follow_each_write(
    history: list[dict[str, Any]],
    steps: list[int],
    api_url: str,
    issue_token: Callable[..., str],
) -> None:
    """Each step's write is seen by reads with its token and, once applied, without one."""
    tenant = f"c{uuid.uuid4().hex[:12]}"
    events = shift_history(history, tenant, datetime.now(UTC))
    recorded: list[tuple[dict[str, Any], datetime]] = []
    with PermstoreClient(
        api_url, issue_token(tenant), tenant=tenant, read_your_writes=False
    ) as client:
        assert_answers(client, recorded, None)  # fills the caches with the empty views
        start = 0
        for size in steps:
            chunk = events[start : start + size]
            if not chunk:
                break
            start += size
            token = client.publish(chunk).token
            moment = datetime.now(UTC) - timedelta(seconds=30)
            # Recorded times only order the reference's events (as test_pipeline_reference).
            recorded += [
                (e, moment + timedelta(microseconds=len(recorded) + i)) for i, e in enumerate(chunk)
            ]
            assert_answers(client, recorded, token)
            time.sleep(0.1)  # a token-less read may use a position up to 50 ms old
            assert_answers(client, recorded, None)
