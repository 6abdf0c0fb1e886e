"""Replay safety through the real servers: SIGKILL mid-stream, then a full rebuild into a new
generation; both must end in the views the reference model demands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.cassandra import connect, ensure_generation
from adapters.kafka_lag import LagProbe
from adapters.settings import Settings
from permstore import PermstoreClient
from tests.integration.test_pipeline_reference import compare_with_reference, shift_history
from tests.strategies import histories
from tests.support.kafka_io import publish_events
from tests.support.stack import ManagedProcess, StackEnvironment, processor

pytestmark = pytest.mark.integration


def settings_of(env: dict[str, str], **overrides: Any) -> Settings:
    """Settings as the processes of this test session see them."""
    values: dict[str, Any] = {
        "kafka_bootstrap": env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        "events_topic": env["PERMSTORE_EVENTS_TOPIC"],
        "dlq_topic": env["PERMSTORE_DLQ_TOPIC"],
        "cassandra_keyspace": env["PERMSTORE_CASSANDRA_KEYSPACE"],
        "processor_group": env["PERMSTORE_PROCESSOR_GROUP"],
    }
    values.update(overrides)
    return Settings(**values)


def wait_caught_up(settings: Settings, timeout: float = 120) -> float:
    """Wait until the processor group has committed the end of every partition."""

    async def run() -> float:
        probe = LagProbe(settings)
        await probe.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout:
                if sum((await probe.lag()).values()) == 0:
                    return time.monotonic() - started
                await asyncio.sleep(0.2)
        finally:
            await probe.close()
        raise AssertionError(f"group {settings.processor_group} did not catch up in {timeout}s")

    return asyncio.run(run())


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


def live_rows(settings: Settings, generation: int) -> set[tuple[Any, ...]]:
    """Every live (unexpired) source of every permission row in a generation."""
    cluster, session = connect(settings, "admin", request_timeout=60)
    now = time.time_ns() // 1000
    try:
        rows = session.execute(
            "SELECT tenant, principal, pattern, action, sources FROM "
            f"{settings.cassandra_keyspace}.permissions_by_principal_g{generation}"
        )
        return {
            (r[0], r[1], r[2], r[3], source, expires)
            for r in rows
            for source, expires in (r[4] or {}).items()
            if expires == 0 or expires > now + 5_000_000
        }
    finally:
        cluster.shutdown()


def test_full_rebuild_into_new_generation_equals_live_views(
    test_env: StackEnvironment, api_url: str, processor_process: ManagedProcess
) -> None:
    """Replaying the whole topic into empty generation-2 tables gives the same views."""
    settings = settings_of(test_env.env)
    wait_caught_up(settings)
    cluster, session = connect(settings, "admin", request_timeout=60)
    try:
        ensure_generation(session, settings, 2)
    finally:
        cluster.shutdown()
    group = f"permstore-rebuild-{uuid.uuid4().hex[:8]}"
    env = dict(test_env.env, PERMSTORE_GENERATION="2", PERMSTORE_PROCESSOR_GROUP=group)
    rebuild: ManagedProcess = processor(env, name="rebuild")
    rebuild.start()
    try:
        started = time.monotonic()
        elapsed = wait_caught_up(settings_of(test_env.env, processor_group=group), timeout=300)
        print(f"\nrebuild into generation 2 caught up in {elapsed:.2f}s")
        assert time.monotonic() - started < 300
    finally:
        rebuild.stop()
    live, rebuilt = live_rows(settings, 1), live_rows(settings, 2)
    assert live, "the earlier tests should have left views to compare"
    assert rebuilt == live
