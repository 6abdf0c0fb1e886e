"""Generated histories through real Kafka, the faust processor and Cassandra, read over HTTP,
must answer exactly as the independent reference model of contract section 3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from permstore_client import PermstoreClient, Reason

from tests.reference_model import ReferenceModel, ReferenceState, is_membership_chain
from tests.strategies import BASE, histories, universe
from tests.support.kafka_io import publish_events
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration
UNIVERSE = universe()


def shift_history(
    events: list[dict[str, Any]], tenant: str, anchor: datetime
) -> list[dict[str, Any]]:
    """Move a history to a fresh tenant and make expiries relative to anchor instead of BASE."""
    shifted = []
    for event in events:
        copy = dict(event, tenant=tenant)
        if copy.get("expires_at"):
            moment = datetime.fromisoformat(copy["expires_at"]) - BASE + anchor
            copy["expires_at"] = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        shifted.append(copy)
    return shifted


def assert_reasons_name_chains(
    state: ReferenceState, principal: str, reasons: Sequence[Reason]
) -> None:
    """Direct reasons name no chain; group reasons name a real membership chain to the group."""
    for reason in reasons:
        holder = reason.grant.principal
        if holder == principal:
            assert reason.kind == "direct" and reason.via_chain is None, reason
        else:
            assert reason.kind == "group" and reason.via_group == holder, reason
            assert reason.via_chain is not None, reason
            assert is_membership_chain(state, principal, holder, reason.via_chain), reason


def compare_with_reference(
    client: PermstoreClient, tenant: str, events: list[dict[str, Any]], token: str | None
) -> None:
    """Every check, permission list and who-can answer equals the reference."""
    recorded = [
        (event, datetime.now(UTC) - timedelta(seconds=30) + timedelta(microseconds=i))
        for i, event in enumerate(events)
    ]
    reference = ReferenceModel(recorded, default_tenant=tenant) if events else None
    triples = [
        (p, r, a) for p in UNIVERSE.principals for r in UNIVERSE.resources for a in UNIVERSE.actions
    ]
    before = datetime.now(UTC)
    results = client.check_batch(triples, tenant=tenant, at_least=token).results
    after = datetime.now(UTC)
    state_before = reference.state_at(before) if reference is not None else None
    for (p, r, a), result in zip(triples, results, strict=True):
        if reference is None:
            assert not result.allowed
            continue
        expected = reference.allowed(p, r, a, before)
        if expected != reference.allowed(p, r, a, after):
            continue  # an expiry fell inside the call; either answer is right
        assert result.allowed == expected, (p, r, a, result.reasons)
        assert bool(result.reasons) == result.allowed
        assert state_before is not None
        assert_reasons_name_chains(state_before, p, result.reasons)
    if reference is None:
        return
    now = datetime.now(UTC)
    state_now = reference.state_at(now)
    for principal in UNIVERSE.principals:
        items = list(client.permissions(principal, tenant=tenant, limit=3))
        for item in items:
            assert_reasons_name_chains(state_now, principal, item.reasons)
        listed = {(i.resource, i.action) for i in items}
        assert listed == reference.effective_permissions(principal, now), principal
    for resource in UNIVERSE.resources:
        for action in UNIVERSE.actions:
            found = list(client.who_can(resource, action=action, tenant=tenant, limit=2))
            for one in found:
                assert_reasons_name_chains(state_now, one.principal, one.reasons)
            who = {i.principal for i in found}
            assert who == reference.who_can(resource, action, now), (resource, action)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories(max_events=30))
def test_pipeline_equals_reference(
    history: list[dict[str, Any]],
    test_env: StackEnvironment,
    api_url: str,
    issue_token: Callable[..., str],
) -> None:
    """Dozens of generated histories, each in its own tenant, end to end."""
    tenant = f"h{uuid.uuid4().hex[:12]}"
    events = shift_history(history, tenant, datetime.now(UTC))
    token = None
    if events:
        token = publish_events(
            test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            test_env.env["PERMSTORE_EVENTS_TOPIC"],
            events,
        )
    with PermstoreClient(api_url, issue_token(tenant)) as client:
        compare_with_reference(client, tenant, events, token)
