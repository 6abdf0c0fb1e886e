"""Replay safety through the real servers: SIGKILL mid-stream while events keep arriving."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permstore_client import PermstoreClient

from permstore.adapters.settings import Settings
from permstore.deploy.harness import namespace_settings
from permstore.services.ops import wait_caught_up
from tests.integration.test_pipeline_reference import compare_with_reference, shift_history
from tests.strategies import histories
from tests.support.kafka_io import publish_events
from tests.support.stack import ManagedProcess, StackEnvironment, processor

pytestmark = pytest.mark.integration


def settings_of(env: dict[str, str], **overrides: Any) -> Settings:
    """Settings as the processes of this test session see them."""
    return namespace_settings(env, **overrides)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(many=st.lists(histories(max_events=40), min_size=12, max_size=12))
def test_sigkill_mid_stream_then_restart(
    many: list[list[dict[str, Any]]],
    test_env: StackEnvironment,
    api_url: str,
    processor_process: ManagedProcess,
    issue_token: Callable[..., str],
) -> None:
    """Events keep arriving while the processor is killed; after restart nothing is lost."""
    bootstrap = test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = test_env.env["PERMSTORE_EVENTS_TOPIC"]
    anchor = datetime.now(UTC)
    tenants = [f"k{uuid.uuid4().hex[:12]}" for _ in many]
    shifted = [shift_history(h, t, anchor) for h, t in zip(many, tenants, strict=True)]
    tokens: dict[str, str] = {}
    half = len(shifted) // 2
    for tenant, events in zip(tenants[:half], shifted[:half], strict=True):
        if events:
            tokens[tenant] = publish_events(bootstrap, topic, events)
    processor_process.kill()
    for tenant, events in zip(tenants[half:], shifted[half:], strict=True):
        if events:
            tokens[tenant] = publish_events(bootstrap, topic, events)
    restarted = time.monotonic()
    processor_process.start()
    recovery = wait_caught_up(settings_of(test_env.env))
    print(f"\nrecovery after SIGKILL: caught up {recovery:.2f}s after restart")
    assert time.monotonic() - restarted < 120
    for tenant, events in zip(tenants, shifted, strict=True):
        with PermstoreClient(api_url, issue_token(tenant)) as client:
            compare_with_reference(client, tenant, events, tokens.get(tenant))


def test_sigterm_stops_gracefully_and_loses_nothing(
    test_env: StackEnvironment,
    api_url: str,
    processor_process: ManagedProcess,
    issue_token: Callable[..., str],
) -> None:
    """A second processor shares the partitions, is stopped with SIGTERM mid-stream, exits
    cleanly within the bound, and every event is still applied (by the one that stays)."""
    bootstrap = test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = test_env.env["PERMSTORE_EVENTS_TOPIC"]
    second = processor(test_env.env, name="sigterm")
    second.start()
    time.sleep(5)  # let it join the group and take partitions
    tenants = [f"g{uuid.uuid4().hex[:10]}" for _ in range(8)]
    events = {
        t: [
            {
                "event_id": f"e{n}",
                "tenant": t,
                "type": "grant",
                "actor": "user:admin",
                "occurred_at": "2026-01-01T00:00:00Z",
                "principal": f"user:u{n}",
                "resource": f"doc:d{n}",
                "permission": "read",
            }
            for n in range(150)
        ]
        for t in tenants
    }
    tokens = {t: publish_events(bootstrap, topic, evs) for t, evs in events.items()}
    stopped = time.monotonic()
    code = second.stop(timeout=30)
    assert code in (0, 75), f"exit code {code}: {second.log_tail()}"
    print(f"\nSIGTERM: processor exited with {code} after {time.monotonic() - stopped:.2f}s")
    for t, evs in events.items():
        with PermstoreClient(api_url, issue_token(t)) as client:
            checks = [(f"user:u{n}", f"doc:d{n}", "read") for n in range(len(evs))]
            answers = client.check_batch(checks, tenant=t, at_least=tokens[t]).results
            assert all(r.allowed for r in answers)
