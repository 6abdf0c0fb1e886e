"""Point-in-time answers through snapshots: a tenant long enough to be snapshotted answers
audit checks at past times exactly as the reference model does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from permstore_client import PermstoreClient

from tests.reference_model import ReferenceModel
from tests.support import events
from tests.support.kafka_io import publish_events
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration


def event(tenant: str, n: int, kind: str, **fields: str) -> dict[str, Any]:
    """A contract event with a unique id."""
    return events.event(
        tenant, kind, event_id=f"{kind}-{n}", occurred_at=events.FIXED_OCCURRED_AT, **fields
    )


def rfc3339(moment: datetime) -> str:
    """Z-suffixed RFC 3339."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_audit_check_across_snapshot_equals_reference(
    test_env: StackEnvironment, api_url: str, issue_token: Callable[..., str]
) -> None:
    """6,000 grants (one snapshot at least), then revokes and memberships; past answers hold."""
    tenant = f"s{uuid.uuid4().hex[:12]}"
    bootstrap = test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = test_env.env["PERMSTORE_EVENTS_TOPIC"]
    phase1 = [
        event(
            tenant,
            i,
            "grant",
            principal=f"user:u{i}",
            resource=f"doc:d{i % 50}/x",
            permission="read",
        )
        for i in range(6000)
    ]
    phase1.append(
        event(tenant, 0, "grant", principal="group:eng", resource="doc:*", permission="write")
    )
    phase2 = [
        event(
            tenant,
            i,
            "revoke",
            principal=f"user:u{i}",
            resource=f"doc:d{i % 50}/x",
            permission="read",
        )
        for i in range(0, 100, 2)
    ] + [event(tenant, i, "add_member", group="group:eng", member=f"user:u{i}") for i in range(10)]
    phase3 = [
        event(tenant, i, "remove_member", group="group:eng", member=f"user:u{i}") for i in range(5)
    ]
    recorded: list[tuple[dict[str, Any], datetime]] = []
    cuts = []
    token = ""
    for phase in (phase1, phase2, phase3):
        token = publish_events(bootstrap, topic, phase)
        stamp = datetime.now(UTC)
        recorded += [(e, stamp) for e in phase]
        time.sleep(1.2)
        cuts.append(datetime.now(UTC))
        time.sleep(1.2)
    reference = ReferenceModel(recorded, default_tenant=tenant)
    questions = [
        (f"user:u{i}", f"doc:d{i % 50}/x", action)
        for i in (0, 1, 2, 3, 4, 6, 7, 11, 5999)
        for action in ("read", "write")
    ]
    with PermstoreClient(api_url, issue_token(tenant, "check,audit")) as client:
        client.check("user:u0", "doc:d0/x", "read", tenant=tenant, at_least=token)
        for at in cuts:
            for principal, resource, action in questions:
                got = client.audit_check(principal, resource, action, rfc3339(at), tenant=tenant)
                expected = reference.allowed(principal, resource, action, at)
                assert got.allowed == expected, (principal, resource, action, at)
    answer = httpx.get(
        f"{api_url}/v1/tenants/{tenant}/audit/check",
        params={
            "principal": "user:u1",
            "resource": "doc:d1/x",
            "action": "read",
            "at": rfc3339(cuts[0]),
        },
        headers={"Authorization": f"Bearer {issue_token(tenant, 'audit')}"},
    ).json()
    assert answer["allowed"] is True
    assert answer["replayed_events"] < len(phase1), "a snapshot should shorten the replay"
