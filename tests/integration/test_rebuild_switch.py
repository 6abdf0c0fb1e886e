"""`permstore rebuild` under check load: 100,000 events replayed into a new generation,
verified against the serving one, and readers switched with no failed check."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout import catalogue
from permstore.adapters.settings import Settings
from permstore.core.consistency import START, encode_token
from permstore.services import ops
from permstore.services.ops import wait_caught_up
from tests.integration.test_crash_restart import settings_of
from tests.support import events
from tests.support.kafka_io import produce_many
from tests.support.stack import ManagedProcess, StackEnvironment

pytestmark = pytest.mark.integration

EVENTS = 100_000
TENANTS = 20


def grant(tenant: str, n: int) -> bytes:
    """A direct grant event."""
    return json.dumps(
        events.grant(
            tenant,
            f"user:u{n % 500}",
            f"doc:f{n % 40}/d{n}",
            "read",
            event_id=f"g{n}",
            occurred_at=events.FIXED_OCCURRED_AT,
        )
    ).encode()


class CheckLoad(threading.Thread):
    """Checks in a loop until stopped; records every status and wrong answer."""

    def __init__(self, url: str, token: str, tenant: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.tenant = url, token, tenant
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.wrong = 0
        self.generations: set[int] = set()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            count = 0
            while not self.stop.is_set():
                # The first tenant holds grant n for every n that is a multiple of TENANTS.
                n = TENANTS * (count // 2 % (EVENTS // TENANTS))
                expected = count % 2 == 0
                resource = f"doc:f{n % 40}/d{n if expected else n + 1}"
                body = {
                    "tenant": self.tenant,
                    "principal": f"user:u{n % 500}",
                    "resource": resource,
                    "action": "read",
                }
                response = client.post("/v1/check", json=body)
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    self.wrong += int(response.json()["allowed"] is not expected)
                if count % 50 == 0:
                    self.generations.add(int(client.get("/readyz").json()["generation"]))
                count += 1


def drain_changes(client: httpx.Client, tenant: str, after: str) -> tuple[list[str], str]:
    """The causes of every change record after a token, following next to the end."""
    causes: list[str] = []
    while True:
        response = client.get(
            f"/v1/tenants/{tenant}/changes", params={"after": after, "limit": 1000}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["changes"]:
            return causes, after
        causes += [record["cause"] for record in body["changes"]]
        after = body["next"]


def test_rebuild_switches_generations_under_load(
    test_env: StackEnvironment,
    api_url: str,
    processor_process: ManagedProcess,
    issue_token: Callable[..., str],
) -> None:
    """No failed or wrong check while 100,000 events are rebuilt and readers switch."""
    run = uuid.uuid4().hex[:8]
    tenants = [f"r{run}{i}" for i in range(TENANTS)]
    records = [
        (tenants[n % TENANTS].encode(), grant(tenants[n % TENANTS], n)) for n in range(EVENTS)
    ]
    bootstrap = test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    produce_many(bootstrap, test_env.env["PERMSTORE_EVENTS_TOPIC"], records)
    settings: Settings = settings_of(test_env.env)
    before = httpx.get(f"{api_url}/readyz").json()["generation"]
    wait_caught_up(settings, generation=before, timeout=300)

    follower = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {issue_token(tenants[0], 'check')}"}
    )
    followed, after = drain_changes(follower, tenants[0], encode_token(tenants[0], START))
    assert sorted(followed) == sorted(f"g{n}" for n in range(0, EVENTS, TENANTS))

    load = CheckLoad(api_url, issue_token(tenants[0], "check"), tenants[0])
    load.start()
    progress: list[tuple[int, int]] = []
    try:
        result = ops.rebuild(
            settings,
            lambda done, total: progress.append((done, total)),
            handover_seconds=0,
            log=print,
        )
        assert result.switched and not result.mismatches
        assert result.tenants_compared >= TENANTS and result.tenants_skipped == 0
        # The processor follows the active generation: it stops itself, and we restart it.
        deadline = time.monotonic() + 30
        while processor_process.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processor_process.alive(), "the processor should leave the old generation"
        processor_process.start()
        deadline = time.monotonic() + 30
        while result.generation not in load.generations and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        load.stop.set()
        load.join(30)
    print(f"\nrebuild: {result.events} records in {result.seconds:.1f}s, checks {load.statuses}")
    assert load.statuses.get(200, 0) > 50
    assert set(load.statuses) == {200}, load.statuses
    assert load.wrong == 0
    assert {before, result.generation} <= load.generations
    assert progress and progress[-1][0] == progress[-1][1]

    # The rebuild replayed every event into the new generation; a follower sees none of them
    # again, and the change of an event written after the switch once.
    produce_many(
        bootstrap,
        test_env.env["PERMSTORE_EVENTS_TOPIC"],
        [(tenants[0].encode(), grant(tenants[0], EVENTS))],
    )
    wait_caught_up(settings, timeout=120)
    assert drain_changes(follower, tenants[0], after)[0] == [f"g{EVENTS}"]
    follower.close()

    report = asyncio.run(ops.status(settings))
    assert report["cassandra"] == "ok" and report["kafka"] == "ok"
    assert report["generation"] == result.generation
    cluster, session = connect(settings, "admin", request_timeout=60)
    try:
        listed = {g.id: g for g in catalogue.list_generations(session, settings.cassandra_keyspace)}
        assert listed[result.generation].active and listed[before].state == "retired"
        with pytest.raises(ValueError, match="active"):
            catalogue.drop_generation(session, settings.cassandra_keyspace, result.generation)
        catalogue.drop_generation(session, settings.cassandra_keyspace, before)
        remaining = {g.id for g in catalogue.list_generations(session, settings.cassandra_keyspace)}
        assert before not in remaining
    finally:
        cluster.shutdown()
