"""Operations: rebuild views into a new generation, list and drop generations, status."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout import catalogue
from permstore.adapters.cassandra_layout.inspection import applied_offsets, permission_rows
from permstore.adapters.cassandra_layout.schema import drop_keyspace, ensure_generation, ping
from permstore.adapters.kafka_lag import LagProbe
from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings

REPO = Path(__file__).resolve().parent.parent
Progress = Callable[[int, int], None]


@dataclass
class RebuildResult:
    """What a rebuild did."""

    generation: int
    seconds: float
    events: int
    tenants_compared: int = 0
    tenants_skipped: int = 0
    mismatches: list[str] = field(default_factory=list)
    switched: bool = False


def live_digest(session: Session, keyspace: str, generation: int) -> dict[str, str]:
    """Per tenant, a digest of every live permission source of a generation."""
    now = time.time_ns() // 1000
    per_tenant: dict[str, list[str]] = defaultdict(list)
    for tenant, principal, pattern, action, sources in permission_rows(
        session, keyspace, generation
    ):
        for source, expires in sorted((sources or {}).items()):
            # Sources expiring soon may be expired in one generation and not the other.
            if expires == 0 or expires > now + 60_000_000:
                per_tenant[tenant].append(f"{principal}\x1f{pattern}\x1f{action}\x1f{source}")
    return {
        tenant: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
        for tenant, lines in per_tenant.items()
    }


def compare_generations(
    session: Session, keyspace: str, old: int, new: int
) -> tuple[int, int, list[str]]:
    """Compare tenants both generations applied to the same offset: (compared, skipped, bad)."""
    old_offsets, new_offsets = (
        applied_offsets(session, keyspace, old),
        applied_offsets(session, keyspace, new),
    )
    same = {t for t, o in new_offsets.items() if old_offsets.get(t) == o}
    old_digest, new_digest = (
        live_digest(session, keyspace, old),
        live_digest(session, keyspace, new),
    )
    bad = sorted(t for t in same if old_digest.get(t) != new_digest.get(t))
    skipped = len(set(old_offsets) | set(new_offsets)) - len(same)
    return len(same), skipped, bad


async def _wait_caught_up(
    settings: Settings, generation: int, process: subprocess.Popen[bytes], progress: Progress
) -> int:
    probe = LagProbe(settings, "admin")
    await probe.start()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rebuild processor exited with {process.returncode}")
            ends = await probe.end_offsets(settings.events_topic)
            lag = await probe.lag(settings.group_for(generation))
            total = sum(ends.values())
            progress(total - sum(lag.values()), total)
            if sum(lag.values()) == 0:
                return total
            await asyncio.sleep(0.5)
    finally:
        await probe.close()


async def _group_members(settings: Settings, group: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings, "admin")
    )
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
        return sum(len(g.members) for g in described[0].groups) if described else 0
    finally:
        await admin.close()


def _active_generation(settings: Settings) -> int:
    cluster, session = connect(settings, "admin", request_timeout=30.0)
    try:
        return catalogue.active_generation(session, settings.cassandra_keyspace) or 1
    finally:
        cluster.shutdown()


def rebuild(
    settings: Settings,
    progress: Progress,
    *,
    switch: bool = True,
    handover_seconds: float = 60.0,
    log: Callable[[str], None] = print,
) -> RebuildResult:
    """Replay the topic into a new generation while the current one serves; verify; switch."""
    cluster, session = connect(settings, "admin", request_timeout=60.0)
    started = time.monotonic()
    process: subprocess.Popen[bytes] | None = None
    try:
        keyspace = settings.cassandra_keyspace
        old = catalogue.active_generation(session, keyspace) or 1
        new = max(catalogue.generation_ids(session, keyspace)) + 1
        ensure_generation(session, settings, new)
        catalogue.create_building(session, keyspace, new)
        log(f"building generation {new} (generation {old} keeps serving)")
        env = {
            **os.environ,
            **settings.as_env(),
            "PERMSTORE_GENERATION": str(new),
            "PERMSTORE_PROCESSOR_METRICS_PORT": "0",
        }
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = settings.logs_dir / f"rebuild-{keyspace}-g{new}.log"
        with log_path.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "permstore.streams.main"],
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        log(f"rebuild processor log: {log_path}")
        events = asyncio.run(_wait_caught_up(settings, new, process, progress))
        result = RebuildResult(new, time.monotonic() - started, events)
        log(f"generation {new} caught up: {events} records in {result.seconds:.1f} s; verifying")
        compared, skipped, bad = compare_generations(session, keyspace, old, new)
        result.tenants_compared, result.tenants_skipped, result.mismatches = compared, skipped, bad
        if bad:
            catalogue.set_state(session, keyspace, new, "failed")
            log(f"verification failed for {len(bad)} tenants; generation {old} stays active")
            return result
        catalogue.set_state(session, keyspace, new, "ready")
        if switch:
            catalogue.activate(session, keyspace, old, new)
            result.switched = True
            log(f"switched readers to generation {new}")
            _hand_over(settings, new, handover_seconds, log)
        return result
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.shutdown()


def _hand_over(
    settings: Settings, generation: int, seconds: float, log: Callable[[str], None]
) -> None:
    """Keep our processor until the supervised one has joined the new generation's group."""
    group = settings.group_for(generation)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if asyncio.run(_group_members(settings, group)) > 1:
            log("the running processor has joined the new generation")
            return
        time.sleep(1.0)
    log(
        "no other processor joined the new generation yet; start or restart one "
        "(it follows the active generation)"
    )


async def status(settings: Settings) -> dict[str, Any]:
    """Servers reachable, lag per partition, dead letters, generation in use."""
    report: dict[str, Any] = {}
    generation = None
    try:
        cluster, session = await asyncio.to_thread(connect, settings, "admin", request_timeout=5.0)
        try:
            await ping(session)
            generation = catalogue.active_generation(session, settings.cassandra_keyspace)
            report["cassandra"] = "ok"
        finally:
            cluster.shutdown()
    except Exception as exc:
        report["cassandra"] = f"unreachable ({type(exc).__name__})"
    report["generation"] = generation
    probe = LagProbe(settings, "admin")
    try:
        await asyncio.wait_for(probe.start(), 10)
        report["kafka"] = "ok"
        report["lag"] = await probe.lag(settings.group_for(generation or 1))
        report["dead_letters"] = sum((await probe.end_offsets(settings.dlq_topic)).values())
    except Exception as exc:
        report["kafka"] = f"unreachable ({type(exc).__name__})"
    finally:
        await probe.close()
    return report


def drop_data(settings: Settings) -> None:
    """Delete everything of one deployment: its topics, their ACLs and its keyspace.

    Tests and benchmarks use it to remove the namespace they made; it waits until the broker
    has really deleted the topics, so they can be created again at once.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    from permstore.adapters.kafka_acls import drop_acls
    from permstore.adapters.kafka_security import client_options

    async def drop_topics() -> None:
        await drop_acls(settings)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, **client_options(settings, "admin")
        )
        await admin.start()
        try:
            names = set(await admin.list_topics()) & {
                settings.events_topic,
                settings.dlq_topic,
                settings.usage_topic,
                settings.changes_topic,
                settings.view_updates_topic,
            }
            if names:
                await admin.delete_topics(sorted(names))
            for _ in range(150):  # the broker deletes topics asynchronously
                if not set(await admin.list_topics()) & names:
                    break
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    asyncio.run(drop_topics())
    cluster, session = connect(settings, "admin", request_timeout=120)
    try:
        drop_keyspace(session, settings.cassandra_keyspace)
    finally:
        cluster.shutdown()


def wait_caught_up(
    settings: Settings, generation: int | None = None, timeout: float = 120
) -> float:
    """Wait until a generation's processor group (by default the active one's) has committed
    the end of every partition; returns the seconds waited, raises TimeoutError past the bound."""
    if generation is None:
        generation = _active_generation(settings)
    group = settings.group_for(generation)

    async def run() -> float:
        probe = LagProbe(settings, "admin")
        await probe.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout:
                if sum((await probe.lag(group)).values()) == 0:
                    return time.monotonic() - started
                await asyncio.sleep(0.2)
        finally:
            await probe.close()
        raise TimeoutError(f"group {group} did not catch up in {timeout:.0f}s")

    return asyncio.run(run())
