"""Poison records published straight to Kafka end in the DLQ with their reason; the valid
events around them still apply."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permstore_client import PermstoreClient

from permstore.core.consistency import LogPoint, encode_token
from tests.strategies import labelled_poison_records
from tests.support import events
from tests.support.kafka_io import produce, read_topic
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.integration


def grant(tenant: str, event_id: str, principal: str) -> bytes:
    """A valid grant event."""
    return json.dumps(
        events.grant(
            tenant,
            principal,
            "doc:x",
            "read",
            event_id=event_id,
            occurred_at=events.FIXED_OCCURRED_AT,
        )
    ).encode()


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(poison=st.lists(labelled_poison_records(), min_size=15, max_size=15))
def test_poison_goes_to_dlq_and_stream_goes_on(
    poison: list[tuple[str, bytes]],
    test_env: StackEnvironment,
    api_url: str,
    issue_token: Callable[..., str],
) -> None:
    """Each poison record reaches the DLQ with bytes, reason, partition and offset."""
    tenant = f"p{uuid.uuid4().hex[:12]}"
    bootstrap = test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    records = [(tenant.encode(), grant(tenant, "first", "user:before"))]
    records += [(tenant.encode(), payload) for _, payload in poison]
    records.append((b"other-tenant", grant(tenant, "wrong-key", "user:wrongkey")))
    records.append((tenant.encode(), grant(tenant, "last", "user:after")))
    positions = produce(bootstrap, test_env.env["PERMSTORE_EVENTS_TOPIC"], records)

    partition, offset = positions[-1]
    with PermstoreClient(api_url, issue_token(tenant)) as client:
        token = encode_token(tenant, LogPoint(partition, offset))
        results = client.check_batch(
            [(p, "doc:x", "read") for p in ("user:before", "user:after", "user:wrongkey")],
            tenant=tenant,
            at_least=token,
        ).results
    assert [r.allowed for r in results] == [True, True, False]

    poisoned = {positions[i + 1] for i in range(len(poison))} | {positions[-2]}
    # The wrong-key record sits on another partition than the token names: its letter may
    # still be on its way when the check answers, so the DLQ is read until it holds them all.
    deadline = time.monotonic() + 30
    while True:
        letters = {}
        for message in read_topic(bootstrap, test_env.env["PERMSTORE_DLQ_TOPIC"]):
            headers = {k: v.decode() for k, v in message.headers}
            source = (
                int(headers["permstore-source-partition"]),
                int(headers["permstore-source-offset"]),
            )
            if source in poisoned:
                letters[source] = (message.value, headers["permstore-reason"])
        if set(letters) == poisoned or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(letters) == poisoned
    for i, (label, payload) in enumerate(poison):
        value, reason = letters[positions[i + 1]]
        assert value == payload, label
        assert reason, label
    assert "key" in letters[positions[-2]][1]
