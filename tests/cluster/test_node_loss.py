"""Node loss on the local cluster under a steady load of writes and checks.

One Cassandra node is SIGKILLed and restarted, later one Kafka broker, later one of the two
processors (never two at once). Every answer is compared with the reference model; at the end
every accepted event is in the views exactly once and the restarted parts are back in the
cluster. The figures (checks answered, 503s and how long they lasted, events lost) are printed
and saved in .local/cluster/node_loss.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from permstore.adapters.kafka_security import client_options
from permstore.adapters.settings import Settings
from permstore.deploy.stack.cluster import Cluster, kill, up
from permstore.deploy.stack.processes import our_pid
from permstore.services.auth_settings import AuthSettings, build_issuer
from tests.e2e.helpers import grant, revoke
from tests.reference_model import ReferenceModel

PRINCIPALS = ("user:a", "user:b", "user:c")
SLOTS = 4  # resources per tenant
TENANTS = 6
LOAD_PAUSE = 0.05  # seconds between two calls of one load thread


def _resources(tenant: str) -> list[str]:
    return [f"doc:{tenant}/r{i}" for i in range(SLOTS)]


@dataclass
class Tenant:
    """One tenant's accepted events, in the order the API accepted them, and their tokens."""

    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    # The event being sent: the views may hold it before its 202 reaches the writer.
    inflight: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    models: dict[int, ReferenceModel] = field(default_factory=dict)

    def known(self) -> int:
        """Accepted events plus the one in flight (call with the lock held)."""
        return len(self.events) + (self.inflight is not None)

    def model(self, count: int) -> ReferenceModel:
        """The reference model of the first `count` events in send order (cached)."""
        if count not in self.models:
            with self.lock:
                sent = self.events + ([self.inflight] if self.inflight else [])
            base = datetime.now(UTC) - timedelta(days=1)
            records = [(e, base + timedelta(milliseconds=i)) for i, e in enumerate(sent)]
            self.models[count] = ReferenceModel(records[:count], default_tenant=self.name)
        return self.models[count]


@dataclass
class Tally:
    """What the load saw."""

    checks: int = 0
    checks_ok: int = 0
    checks_503: int = 0
    checks_ambiguous: int = 0  # a write landed during the call: either answer is right
    writes_accepted: int = 0
    writes_retried: int = 0
    wrong: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    # (sent, answered, what) of every call that got no answer or a 503
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note_failure(self, what: str, sent: float) -> None:
        """Remember when a call was not answered (for the outage windows)."""
        with self.lock:
            self.failures.append((sent, time.monotonic(), what))


def _code(response: httpx.Response | None) -> str:
    """The error code of an answer (contract: `{"error": {"code": ...}}`)."""
    try:
        return str(response.json()["error"]["code"]) if response is not None else "?"
    except (ValueError, KeyError, TypeError):
        return "?"


def _clients(cluster: Cluster, token: str) -> list[httpx.Client]:
    return [
        httpx.Client(
            base_url=f"http://127.0.0.1:{app.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
        )
        for app in cluster.apps()
        if app.name.startswith("api")
    ]


def _writer(
    clients: list[httpx.Client], tenants: list[Tenant], tally: Tally, stop: threading.Event
) -> None:
    """Grant or revoke at random, one event a call; retry an unanswered event (same id)."""
    rng = random.Random(7)
    turn = 0
    while not stop.is_set():
        tenant = rng.choice(tenants)
        kind = rng.choice((grant, grant, revoke))
        resource = rng.choice(_resources(tenant.name))
        item = kind(tenant.name, rng.choice(PRINCIPALS), resource, "read")
        with tenant.lock:
            tenant.inflight = item
        deadline = time.monotonic() + 120
        while True:
            turn += 1
            client = clients[turn % len(clients)]
            try:
                sent = time.monotonic()
                response = client.post("/v1/events", json={"events": [item]})
                status = response.status_code
            except httpx.HTTPError as exc:
                status, response = 0, None
                tally.note_failure(f"write {type(exc).__name__}", sent)
            if status == 202 and response is not None:
                with tenant.lock:
                    tenant.events.append(item)
                    tenant.tokens.append(response.json()["token"])
                    tenant.inflight = None
                with tally.lock:
                    tally.writes_accepted += 1
                break
            if status not in (0, 503):
                with tally.lock:
                    tally.other_errors.append(
                        f"write {status}: {response.text if response else ''}"
                    )
                return
            if status == 503:
                tally.note_failure(f"write 503 {_code(response)}", sent)
            with tally.lock:
                tally.writes_retried += 1
            assert time.monotonic() < deadline, "an event was refused for 120 s"
            time.sleep(0.2)
        time.sleep(LOAD_PAUSE)


def _checker(
    clients: list[httpx.Client], tenants: list[Tenant], tally: Tally, stop: threading.Event
) -> None:
    """Check at the newest token of a tenant; compare with the reference at every count of
    events the answer may include (from that token's to the newest at the reply)."""
    rng = random.Random(11)
    turn = 0
    while not stop.is_set():
        tenant = rng.choice(tenants)
        with tenant.lock:
            low = len(tenant.events)
            token = tenant.tokens[-1] if tenant.tokens else None
        principal, resource = rng.choice(PRINCIPALS), rng.choice(_resources(tenant.name))
        body: dict[str, Any] = {
            "tenant": tenant.name,
            "principal": principal,
            "resource": resource,
            "action": "read",
        }
        if token is not None:
            body["consistency"] = {"at_least": token}
        turn += 1
        try:
            sent = time.monotonic()
            response = clients[turn % len(clients)].post("/v1/check", json=body)
        except httpx.HTTPError as exc:
            tally.note_failure(f"check {type(exc).__name__}", sent)
            with tally.lock:
                tally.checks += 1
            continue
        with tenant.lock:
            high = tenant.known()
        with tally.lock:
            tally.checks += 1
        if response.status_code == 503:
            tally.note_failure(f"check 503 {_code(response)}", sent)
            with tally.lock:
                tally.checks_503 += 1
            continue
        if response.status_code != 200:
            with tally.lock:
                tally.other_errors.append(f"check {response.status_code}: {response.text}")
            continue
        allowed = response.json()["allowed"]
        now = datetime.now(UTC)
        expected = {
            tenant.model(n).allowed(principal, resource, "read", now) for n in range(low, high + 1)
        }
        with tally.lock:
            tally.checks_ok += 1
            if len(expected) > 1:
                tally.checks_ambiguous += 1
            elif allowed not in expected:
                tally.wrong.append(f"{tenant.name} {principal} {resource}: {allowed}, {low} events")
        time.sleep(LOAD_PAUSE)


def _windows(
    failures: list[tuple[float, float, str]], start: float, gap: float = 3.0
) -> list[dict[str, Any]]:
    """Merge failed calls (from sending to the answer, a 503 after a 5 s wait included) into
    outage windows: calls that overlap or are less than `gap` seconds apart."""
    windows: list[dict[str, Any]] = []
    for sent, answered, what in sorted(failures):
        if windows and sent - windows[-1]["until"] <= gap:
            windows[-1]["until"] = max(windows[-1]["until"], answered)
            windows[-1]["calls"] += 1
            windows[-1]["kinds"].add(what)
        else:
            windows.append({"from": sent, "until": answered, "calls": 1, "kinds": {what}})
    return [
        {
            "from_s": round(w["from"] - start, 1),
            "duration_s": round(w["until"] - w["from"], 1),
            "calls": w["calls"],
            "kinds": sorted(w["kinds"]),
        }
        for w in windows
    ]


def _settings(cluster: Cluster) -> Settings:
    env = cluster.app_env()
    return Settings(
        kafka_bootstrap=env["PERMSTORE_KAFKA_BOOTSTRAP"],
        local_dir=cluster.dir,
        cassandra_hosts=env["PERMSTORE_CASSANDRA_HOSTS"].split(","),
        cassandra_port=int(env["PERMSTORE_CASSANDRA_PORT"]),
    )


def _in_sync_replicas(cluster: Cluster) -> list[int]:
    """Per partition of the events topic: how many replicas are in sync."""
    settings = _settings(cluster)

    async def run() -> list[int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, **client_options(settings, "admin")
        )
        await admin.start()
        try:
            described = await admin.describe_topics([settings.events_topic])
        finally:
            await admin.close()
        return [len(p["isr"]) for p in described[0]["partitions"]]

    return asyncio.run(run())


def _wait_in_sync(cluster: Cluster, timeout: float = 180) -> float:
    started = time.monotonic()
    while True:
        isr = _in_sync_replicas(cluster)
        if isr and min(isr) == 3:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"replicas not back in sync: {isr}"
        time.sleep(2)


def _cassandra_serves(cluster: Cluster, index: int) -> None:
    """The node answers a QUORUM read as coordinator: it is back in the ring."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, NoHostAvailable
    from cassandra.cluster import Cluster as Driver
    from cassandra.policies import WhiteListRoundRobinPolicy

    settings = _settings(cluster)
    user, password = settings.cassandra_secret("api") or ("", "")
    host = cluster.nodes[index - 1].host
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host]),
        consistency_level=ConsistencyLevel.QUORUM,
    )
    deadline = time.monotonic() + 180
    while True:
        driver = Driver(
            [host],
            port=settings.cassandra_port,
            auth_provider=PlainTextAuthProvider(user, password),
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            protocol_version=4,
            connect_timeout=20,
        )
        try:
            session = driver.connect()
            row = session.execute("SELECT count(*) FROM permstore.active_generation").one()
            assert row is not None
            return
        except NoHostAvailable:
            # A node that just opened its CQL port on a loaded machine may not answer yet.
            assert time.monotonic() < deadline, f"cassandra{index} does not coordinate reads"
            time.sleep(5)
        finally:
            driver.shutdown()


class Load:
    """Writes and checks in two threads, alternating between the API processes."""

    def __init__(self, cluster: Cluster) -> None:
        issuer = build_issuer(AuthSettings())
        run = uuid.uuid4().hex[:8]
        self.tenants = [Tenant(f"nl{run}t{i}") for i in range(TENANTS)]
        token = issuer.issue("service:node-loss", "*", "check,write,audit", timedelta(hours=1))
        self.tally = Tally()
        self._stop = threading.Event()
        self._writers, self.clients = _clients(cluster, token), _clients(cluster, token)
        args = (self.tenants, self.tally, self._stop)
        self._threads = [
            threading.Thread(target=_writer, args=(self._writers, *args), daemon=True),
            threading.Thread(target=_checker, args=(self.clients, *args), daemon=True),
        ]

    def start(self) -> None:
        """Start both threads."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads (a write being retried finishes first)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(150)
        for client in self._writers:
            client.close()

    def close(self) -> None:
        """Stop and close every client."""
        self.stop()
        for client in self.clients:
            client.close()


@pytest.fixture
def load(cluster: Cluster) -> Iterator[Load]:
    """The load, stopped and closed after the test."""
    running = Load(cluster)
    yield running
    running.close()
    # Whatever a failed run left killed comes back, so the next run finds the whole cluster.
    parts = [*(n.kafka for n in cluster.nodes), *(n.cassandra for n in cluster.nodes)]
    parts += [a.server for a in cluster.apps()]
    missing = [p.name for p in parts if our_pid(p) is None]
    if missing:
        up(cluster, missing)


def _audit_event_ids(client: httpx.Client, tenant: str, principal: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"principal": principal, "limit": "200", **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/v1/tenants/{tenant}/audit/events", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["event"]["event_id"] for item in body["events"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def _sync(client: httpx.Client, tenant: Tenant, timeout: float = 180) -> None:
    """Wait until the views include the tenant's last accepted event."""
    body = {
        "tenant": tenant.name,
        "principal": "user:nobody",
        "resource": "sync:point",
        "action": "noop",
        "consistency": {"at_least": tenant.tokens[-1]},
    }
    deadline = time.monotonic() + timeout
    while client.post("/v1/check", json=body).status_code != 200:
        assert time.monotonic() < deadline, f"{tenant.name}: views never reached its last token"


def test_node_loss_under_load(cluster: Cluster, load: Load) -> None:
    """Kill a Cassandra node, then a broker, then a processor, under load: nothing is lost,
    no answer is wrong, checks keep answering, the killed parts rejoin."""
    start = time.monotonic()
    timeline: list[dict[str, Any]] = []

    def mark(what: str) -> None:
        t = load.tally
        so_far = f"checks {t.checks} (200: {t.checks_ok}, 503: {t.checks_503}), "
        so_far += f"writes {t.writes_accepted} (retried {t.writes_retried}), wrong {len(t.wrong)}"
        timeline.append({"at_s": round(time.monotonic() - start, 1), "what": what})
        print(f"[node-loss] {timeline[-1]['at_s']:>6}s {what}; {so_far}", flush=True)

    load.start()
    time.sleep(15)
    mark(f"SIGKILL cassandra2 (pid {kill(cluster, 'cassandra2')})")
    time.sleep(25)
    mark("restarting cassandra2")
    up(cluster, ["cassandra2"], apps=False)
    _cassandra_serves(cluster, 2)
    mark("cassandra2 back: coordinates QUORUM reads")
    time.sleep(15)
    mark(f"SIGKILL kafka3 (pid {kill(cluster, 'kafka3')})")
    time.sleep(25)
    mark("restarting kafka3")
    up(cluster, ["kafka3"], apps=False)
    mark(f"kafka3 back: every partition in sync after {_wait_in_sync(cluster):.1f}s")
    time.sleep(10)
    mark(f"SIGKILL processor1 (pid {kill(cluster, 'processor1')})")
    time.sleep(30)
    mark("load stops")
    load.stop()
    tally, tenants = load.tally, load.tenants
    # processor2 alone has every partition now: all accepted events must reach the views.
    for tenant in tenants:
        if tenant.tokens:
            _sync(load.clients[0], tenant)
    mark("views caught up with every accepted event (processor2 alone)")
    lost, doubled = 0, 0
    final_wrong: list[str] = []
    now = datetime.now(UTC)
    for tenant in tenants:
        model = tenant.model(len(tenant.events))
        for principal in PRINCIPALS:
            accepted = [e["event_id"] for e in tenant.events if e["principal"] == principal]
            seen = _audit_event_ids(load.clients[1], tenant.name, principal)
            lost += len(set(accepted) - set(seen))
            doubled += len(seen) - len(set(seen))
            for resource in _resources(tenant.name):
                answer = load.clients[len(final_wrong) % 2].post(
                    "/v1/check",
                    json={
                        "tenant": tenant.name,
                        "principal": principal,
                        "resource": resource,
                        "action": "read",
                        "consistency": {"at_least": tenant.tokens[-1]},
                    },
                )
                assert answer.status_code == 200, answer.text
                if answer.json()["allowed"] != model.allowed(principal, resource, "read", now):
                    final_wrong.append(f"{tenant.name} {principal} {resource}")
    mark("restarting processor1")
    up(cluster, ["processor1"])
    figures = {
        "checks": tally.checks,
        "checks_answered_200": tally.checks_ok,
        "checks_503": tally.checks_503,
        "checks_ambiguous_skipped": tally.checks_ambiguous,
        "wrong_answers": len(tally.wrong) + len(final_wrong),
        "writes_accepted": tally.writes_accepted,
        "writes_retried": tally.writes_retried,
        "events_lost": lost,
        "events_applied_twice": doubled,
        "outage_windows": _windows(tally.failures, start),
        "other_errors": tally.other_errors[:10],
        "timeline": timeline,
    }
    print(json.dumps(figures, indent=2), flush=True)
    (cluster.dir / "node_loss.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert tally.writes_accepted > 100, "the load did not run"
    assert tally.checks_ok > 100, "the checks did not run"
    assert not tally.other_errors, tally.other_errors[:5]
    assert not tally.wrong, tally.wrong[:5]
    assert not final_wrong, final_wrong[:5]
    assert lost == 0
    assert doubled == 0
    # One node of three down always leaves a quorum: the store never counts as unavailable and
    # no write is refused. Checks may only wait out a processor's partitions moving (503
    # consistency_timeout).
    kinds = {what for _, _, what in tally.failures}
    assert kinds <= {"check 503 consistency_timeout"}, kinds
