"""Usage and unused access (contract section 7) through the real pipeline.

Grants are recorded now; checks go to an API whose usage clock runs 10 days ahead, findings
are asked of one 40 days ahead (PERMSTORE_USAGE_CLOCK_OFFSET_SECONDS), so a grant is 40 days
old there and its uses 30 days old. The expected findings and counts come from a reference
computed from the same generated events and checks, independently of the API's reasons.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from permstore.adapters.cassandra_layout.usage_writer import UsageWriter, parse_record
from tests.e2e.helpers import (
    TokenFactory,
    add_member,
    all_pages,
    assert_error,
    bearer,
    define_role,
    grant,
    publish,
    q,
    sync,
)
from tests.support.kafka_io import produce
from tests.support.stack import StackEnvironment, extra_api, free_port

DAY = 86_400
FAST = {"PERMSTORE_USAGE_FLUSH_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def check_api(test_env: StackEnvironment, api_url: str) -> Iterator[str]:
    """An API recording usage 10 days ahead of the wall clock, flushing every 0.5 s."""
    offset = {"PERMSTORE_USAGE_CLOCK_OFFSET_SECONDS": str(10 * DAY)}
    with extra_api(test_env.env, "usage-checks", **FAST, **offset) as url:
        yield url


@pytest.fixture(scope="module")
def findings_api(test_env: StackEnvironment, api_url: str) -> Iterator[str]:
    """An API whose findings clock is 40 days ahead of the wall clock."""
    offset = {"PERMSTORE_USAGE_CLOCK_OFFSET_SECONDS": str(40 * DAY)}
    with extra_api(test_env.env, "usage-findings", **FAST, **offset) as url:
        yield url


def client(url: str, token: str) -> httpx.Client:
    """A client of one API with one token."""
    return httpx.Client(base_url=url, headers=bearer(token), timeout=30)


@dataclass
class World:
    """A generated tenant: groups form a forest, so each membership chain is unique."""

    users: list[str]
    parent: dict[str, str]
    roles: dict[str, list[str]]
    grants: list[tuple[str, str, str]]
    checks: list[tuple[str, str, str]] = field(default_factory=list)

    def chain(self, principal: str) -> list[str]:
        """The groups above a principal, nearest first."""
        out = []
        while principal in self.parent:
            principal = self.parent[principal]
            out.append(principal)
        return out

    def actions(self, permission: str) -> list[str]:
        """Actions a permission confers."""
        if permission.startswith("role:"):
            return self.roles.get(permission[5:], [])
        return [permission]

    def used(self) -> tuple[set[tuple[str, str]], Counter[tuple[str, str, str]]]:
        """Reference: items used by the checks, and allowed checks per (principal, pattern,
        action)."""
        items: set[tuple[str, str]] = set()
        per_permission: Counter[tuple[str, str, str]] = Counter()
        for principal, resource, action in self.checks:
            holders = [principal, *self.chain(principal)]
            patterns = set()
            for subject, pattern, permission in self.grants:
                if subject not in holders or action not in self.actions(permission):
                    continue
                if not matches(pattern, resource):
                    continue
                items.add(("grant", f"{subject}|{pattern}|{permission}"))
                patterns.add(pattern)
                if permission.startswith("role:"):
                    items.add(("role_action", f"{permission[5:]}|{action}"))
                member = principal
                for group in holders[1 : holders.index(subject) + 1]:
                    items.add(("membership", f"{group}|{member}"))
                    member = group
            for pattern in patterns:
                per_permission[(principal, pattern, action)] += 1
        return items, per_permission

    def everything(self) -> set[tuple[str, str]]:
        """Reference: every grant, membership and role action that exists."""
        out = {("grant", "|".join(g)) for g in self.grants}
        out |= {("membership", f"{g}|{m}") for m, g in self.parent.items()}
        out |= {("role_action", f"{r}|{a}") for r, acts in self.roles.items() for a in acts}
        return out


def matches(pattern: str, resource: str) -> bool:
    """Contract section 3 rule 2, written out again for the reference."""
    if pattern == resource:
        return True
    rtype = resource.split(":", 1)[0]
    if pattern == f"{rtype}:*":
        return True
    return pattern.endswith("/*") and resource.startswith(pattern[:-1])


def generate(seed: int) -> World:
    """Random users, a forest of groups, roles, grants and checks."""
    rng = random.Random(seed)
    users = [f"user:u{i}" for i in range(6)]
    groups = [f"group:g{i}" for i in range(4)]
    parent: dict[str, str] = {}
    for i, group in enumerate(groups[1:], start=1):
        if rng.random() < 0.6:
            parent[group] = groups[rng.randrange(i)]
    for user in users:
        if rng.random() < 0.7:
            parent[user] = rng.choice(groups)
    roles = {"viewer": ["read", "list"], "editor": ["read", "write", "delete"]}
    patterns = ["doc:a/*", "doc:a/b", "doc:*", "doc:a/c/*", "repo:x"]
    permissions = ["read", "write", "role:viewer", "role:editor"]
    grants = sorted(
        {
            (rng.choice(users + groups), rng.choice(patterns), rng.choice(permissions))
            for _ in range(14)
        }
    )
    world = World(users, parent, roles, grants)
    resources = ["doc:a/b", "doc:a/c/d", "doc:z", "repo:x"]
    actions = ["read", "write", "list", "delete"]
    world.checks = [
        (rng.choice(users), rng.choice(resources), rng.choice(actions)) for _ in range(40)
    ]
    return world


def seed_world(http: httpx.Client, tenant: str, world: World) -> str:
    """Publish the world's events, wait for the views and return the write's token."""
    events: list[dict[str, Any]] = [define_role(tenant, r, a) for r, a in world.roles.items()]
    events += [add_member(tenant, g, m) for m, g in world.parent.items()]
    events += [grant(tenant, s, p, perm) for s, p, perm in world.grants]
    token = publish(http, events)
    sync(http, tenant, token)
    return token


def sync_reader(url: str, issue_token: TokenFactory, tenant: str, token: str) -> None:
    """Wait until the API at url itself has seen the write that returned token.

    Token-less reads (findings, checks) answer at that worker's shared position, which may be
    up to 50 ms older than one another API just waited for (ADR 0019).
    """
    with client(url, issue_token(tenant, "check")) as checker:
        sync(checker, tenant, token)


def findings(http: httpx.Client, tenant: str, days: int) -> dict[tuple[str, str], Any]:
    """Every finding of every page, by (kind, item)."""
    items, _ = all_pages(
        http, f"/v1/tenants/{q(tenant)}/findings/unused", "findings", {"days": days}, 1000
    )
    return {(f["kind"], item_of(f)): f for f in items}


def item_of(finding: dict[str, Any]) -> str:
    """The usage item a finding is about."""
    if finding["kind"] == "grant":
        g = finding["grant"]
        return f"{g['principal']}|{g['resource']}|{g['permission']}"
    if finding["kind"] == "membership":
        return f"{finding['membership']['group']}|{finding['membership']['member']}"
    return f"{finding['role_action']['role']}|{finding['role_action']['action']}"


def usage_of(http: httpx.Client, tenant: str, principal: str) -> list[dict[str, Any]]:
    """Every item of a principal's usage listing."""
    path = f"/v1/tenants/{q(tenant)}/principals/{q(principal)}/usage"
    items, _ = all_pages(http, path, "permissions", {}, 1000)
    return items


def wait_for(condition: Any, timeout: float = 60) -> None:
    """Poll until condition() holds (usage is flushed every 0.5 s, then folded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "usage did not become visible in time"
        time.sleep(0.5)


@pytest.mark.parametrize("seed", [3, 11])
def test_findings_match_the_reference(
    seed: int,
    tenant: str,
    issue_token: TokenFactory,
    check_api: str,
    findings_api: str,
    http: httpx.Client,
) -> None:
    """Generated history and checks: findings per window and per-principal uses agree with a
    reference computed from the same events and checks."""
    world = generate(seed)
    sync_reader(check_api, issue_token, tenant, seed_world(http, tenant, world))
    token = issue_token(tenant, "check,write,audit")
    with client(check_api, token) as checker:
        for principal, resource, action in world.checks:
            body = {"tenant": tenant, "principal": principal, "resource": resource}
            response = checker.post("/v1/check", json={**body, "action": action})
            assert response.status_code == 200, response.text
    used, per_permission = world.used()
    everything = world.everything()
    with client(findings_api, token) as reader:

        def all_usage_seen() -> bool:
            seen = Counter[tuple[str, str, str]]()
            for user in world.users:
                for item in usage_of(reader, tenant, user):
                    seen[(user, item["resource"], item["action"])] += item["uses"]
            return +seen == per_permission

        wait_for(all_usage_seen)
        never = findings(reader, tenant, 0)
        assert set(never) == everything - used
        # 20 days: uses 30 days old are stale too; 35 days: they are recent enough.
        assert set(findings(reader, tenant, 20)) == everything
        assert set(findings(reader, tenant, 35)) == everything - used
        # 45 days: nothing has existed that long.
        assert findings(reader, tenant, 45) == {}
        for finding in never.values():
            assert finding["last_used_at"] is None and finding["uses"] == 0
            assert finding["granted_by"] == "user:admin"
            event = finding["recommendation"]["event"]
            assert not {"event_id", "actor", "occurred_at"} & set(event)
            assert event["tenant"] == tenant
        stale = findings(reader, tenant, 20)
        for key in used:
            assert stale[key]["last_used_at"] is not None


def test_applying_recommendations_removes_the_access(
    tenant: str, issue_token: TokenFactory, findings_api: str, http: httpx.Client
) -> None:
    """POSTing the recommended events (with id, actor and time) leaves no finding and takes the
    access away."""
    world = World(
        users=["user:a"],
        parent={"user:a": "group:g"},
        roles={"editor": ["read", "write"]},
        grants=[("group:g", "doc:x/*", "role:editor"), ("user:a", "doc:y", "read")],
    )
    sync_reader(findings_api, issue_token, tenant, seed_world(http, tenant, world))
    with client(findings_api, issue_token(tenant, "check,write,audit")) as reader:
        found = findings(reader, tenant, 0)
        assert set(found) == world.everything()
        events = {json.dumps(f["recommendation"]["event"], sort_keys=True) for f in found.values()}
        filled = [
            {
                **json.loads(text),
                "event_id": uuid.uuid4().hex,
                "actor": "user:reviewer",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
            for text in sorted(events)
        ]
        sync(reader, tenant, publish(http, filled))
        remaining = findings(reader, tenant, 0)
        # The role's definition is removed last: a deleted role has no actions to find.
        assert remaining == {}
    body = {"tenant": tenant, "principal": "user:a", "resource": "doc:y", "action": "read"}
    assert http.post("/v1/check", json=body).json()["allowed"] is False


def test_findings_paging_is_complete(
    tenant: str, issue_token: TokenFactory, findings_api: str, http: httpx.Client
) -> None:
    """Following cursors yields every finding exactly once, for every kind filter."""
    events = [grant(tenant, f"user:p{i}", f"doc:d{i}", "read") for i in range(23)]
    events += [add_member(tenant, "group:big", f"user:m{i}") for i in range(9)]
    events.append(define_role(tenant, "r", ["a", "b", "c"]))
    sync_reader(findings_api, issue_token, tenant, publish(http, events))
    with client(findings_api, issue_token(tenant, "audit")) as reader:
        path = f"/v1/tenants/{q(tenant)}/findings/unused"
        whole, pages = all_pages(reader, path, "findings", {"days": 0}, 1000)
        assert pages == 1 and len(whole) == 23 + 9 + 3
        paged, pages = all_pages(reader, path, "findings", {"days": 0}, 4)
        assert pages == 9
        assert [f["id"] for f in paged] == [f["id"] for f in whole]
        for kind, count in (("grant", 23), ("membership", 9), ("role_action", 3)):
            items, _ = all_pages(reader, path, "findings", {"days": 0, "kind": kind}, 5)
            assert len(items) == count and {f["kind"] for f in items} == {kind}


@pytest.mark.parametrize("days", ["-1", "3651", "abc", "1.5", ""])
def test_bad_days_answer_422(days: str, http: httpx.Client, tenant: str) -> None:
    """days outside 0-3650 or not an integer is refused naming the field."""
    response = http.get(f"/v1/tenants/{q(tenant)}/findings/unused", params={"days": days})
    assert_error(response, 422, "days")


def test_findings_need_the_audit_scope(
    api_url: str, tenant: str, issue_token: TokenFactory
) -> None:
    """A check-only token, or one of another tenant, is refused."""
    with client(api_url, issue_token(tenant, "check")) as other:
        response = other.get(f"/v1/tenants/{q(tenant)}/findings/unused")
        assert_error(response, 403)
        response = other.get(f"/v1/tenants/{q(tenant)}/principals/user:a/usage")
        assert_error(response, 403)
    with client(api_url, issue_token("elsewhere", "audit")) as other:
        assert_error(other.get(f"/v1/tenants/{q(tenant)}/findings/unused"), 403)


def metric(url: str, name: str, labels: str = "") -> float:
    """The value of one sample of the API's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_usage_outage_never_fails_a_check(
    test_env: StackEnvironment, tenant: str, issue_token: TokenFactory, http: httpx.Client
) -> None:
    """With the usage producer pointed at a dead port, checks answer as before and the drop
    counter rises; nothing reaches the usage tables."""
    sync(http, tenant, publish(http, [grant(tenant, "user:a", "doc:*", "read")]))
    dead = {"PERMSTORE_USAGE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", **FAST}
    token = issue_token(tenant, "check,audit")
    with extra_api(test_env.env, "usage-outage", **dead) as url, client(url, token) as broken:
        started = time.monotonic()
        for i in range(200):
            body = {"tenant": tenant, "principal": "user:a", "resource": f"doc:{i}"}
            answer = broken.post("/v1/check", json={**body, "action": "read"})
            assert answer.status_code == 200 and answer.json()["allowed"] is True
            batch = broken.post(
                "/v1/check/batch",
                json={
                    "tenant": tenant,
                    "checks": [{"principal": "user:a", "resource": f"doc:{i}", "action": "write"}],
                },
            )
            assert batch.status_code == 200 and batch.json()["results"][0]["allowed"] is False
        elapsed = time.monotonic() - started
        wait_for(lambda: metric(url, "permstore_usage_dropped_total", '{reason="kafka"}') > 0)
        assert metric(url, "permstore_usage_flushes_total", '{outcome="failed"}') >= 1
        found = findings(broken, tenant, 0)
        assert ("grant", "user:a|doc:*|read") in found
    print(f"400 calls during the usage outage took {elapsed:.2f} s")


def test_replayed_usage_records_count_once(
    test_env: StackEnvironment, tenant: str, issue_token: TokenFactory, findings_api: str
) -> None:
    """The same record delivered twice (two offsets) and folded again by a second writer (a
    replay) is counted once."""
    from permstore.adapters.cassandra import connect
    from permstore.adapters.settings import Settings

    env = test_env.env
    day = (time.time_ns() // 1000 + 40 * DAY * 1_000_000) // (DAY * 1_000_000)
    last = day * DAY * 1_000_000 + 1_000
    value = {
        "v": 1,
        "tenant": tenant,
        "day": day,
        "src": "replay-test",
        "ts": 42,
        "items": [["permission", "user:r|doc:r|read", 7, last], ["denied", "user:r", 3, last]],
    }
    raw = json.dumps(value).encode()
    bootstrap = env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    produce(bootstrap, env["PERMSTORE_USAGE_TOPIC"], [(tenant.encode(), raw)] * 2, role="api")
    http = client(findings_api, issue_token(tenant, "audit"))
    path = f"/v1/tenants/{q(tenant)}/principals/user:r/usage"

    def denied() -> int:
        return int(http.get(path).json()["denied"]["count"])

    wait_for(lambda: denied() == 3)
    keyspace = env["PERMSTORE_CASSANDRA_KEYSPACE"]
    cluster, session = connect(Settings(cassandra_keyspace=keyspace), "processor")
    try:
        writer = UsageWriter(session, keyspace, 400)
        asyncio.run(writer.write([parse_record(value)] * 3))
    finally:
        cluster.shutdown()
    assert denied() == 3
    http.close()


def test_cli_lists_applies_and_applying_twice_changes_nothing(
    api_url: str, tenant: str, issue_token: TokenFactory, http: httpx.Client
) -> None:
    """The done-when scenario: grants, checks, `permstore findings unused --days 0` shows the
    never-used one, `--apply --yes` removes it, the access is gone, a second apply publishes
    nothing."""
    from typer.testing import CliRunner

    from permstore.services.cli import app

    events = [
        grant(tenant, "user:used", "doc:a", "read"),
        grant(tenant, "user:idle", "doc:b", "read"),
    ]
    sync(http, tenant, publish(http, events))
    used = {"tenant": tenant, "principal": "user:used", "resource": "doc:a", "action": "read"}
    assert http.post("/v1/check", json=used).json()["allowed"] is True
    env = {
        "PERMSTORE_URL": api_url,
        "PERMSTORE_TOKEN": issue_token(tenant, "check,write,audit"),
        "PERMSTORE_TENANT": tenant,
        "PERMSTORE_ACTOR": "user:reviewer",
    }

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(app, ["findings", "unused", *args], env=env)
        assert result.exit_code == 0, result.output
        return result

    def grants_found() -> set[str]:
        return {f["id"] for f in json.loads(cli("--days", "0", "--json").stdout)}

    # The session API flushes usage every 5 s; the check shows up within ~15 s.
    wait_for(lambda: grants_found() == {"grant:user:idle|doc:b|read"})
    table = cli("--days", "0").stdout
    assert "user:idle" in table and "never" in table and "revoke" in table
    rows = cli("--days", "0", "--csv").stdout.splitlines()
    assert rows[0].startswith("kind,what,granted_at") and len(rows) == 2
    planned = json.loads(cli("--days", "0", "--dry-run").stdout)
    assert [e["type"] for e in planned] == ["revoke"]
    assert planned[0]["actor"] == "user:reviewer"
    assert "grant:user:idle|doc:b|read" in planned[0]["reason"]
    assert grants_found() == {"grant:user:idle|doc:b|read"}  # a dry run publishes nothing
    token = cli("--days", "0", "--apply", "--yes").stdout.strip().splitlines()[-1]
    sync(http, tenant, token)
    idle = {**used, "principal": "user:idle", "resource": "doc:b"}
    assert http.post("/v1/check", json=idle).json()["allowed"] is False
    assert grants_found() == set()
    second = CliRunner().invoke(
        app, ["findings", "unused", "--days", "0", "--apply", "--yes"], env=env
    )
    assert second.exit_code == 0 and "0 events would be published" in second.output
    log = http.get(f"/v1/tenants/{q(tenant)}/audit/events").json()["events"]
    assert [e["event"]["type"] for e in log] == ["grant", "grant", "revoke"]


def test_the_client_kit_reads_findings_and_usage(
    api_url: str, tenant: str, issue_token: TokenFactory, http: httpx.Client
) -> None:
    """permstore_client's typed findings and usage pages, against the real service."""
    from permstore_client import PermstoreClient

    events = [
        grant(tenant, "user:kit", "doc:kit/a", "read"),
        grant(tenant, "user:kit", "doc:kit/b", "read"),
    ]
    sync(http, tenant, publish(http, events))
    used = {"tenant": tenant, "principal": "user:kit", "resource": "doc:kit/a", "action": "read"}
    assert http.post("/v1/check", json=used).json()["allowed"] is True
    with PermstoreClient(api_url, issue_token(tenant, "check,audit"), tenant=tenant) as kit:

        def usage() -> dict[str, int]:
            return {item.resource: item.uses for item in kit.usage_page("user:kit").items}

        wait_for(lambda: usage() == {"doc:kit/a": 1, "doc:kit/b": 0})
        page = kit.unused_page(0, kind="grant")
        unused = [f.grant.resource for f in page.items if f.grant is not None]
        assert unused == ["doc:kit/b"]
        assert page.items[0].recommendation is not None
        assert page.items[0].last_used_at is None and page.items[0].uses == 0
