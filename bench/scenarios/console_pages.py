"""Console: time to serve each console page on a dev-sized tenant.

Seeds one tenant (users in nested groups, roles, grants, a history for the audit page), signs
in through the form like a browser, then requests every page many times over one keep-alive
connection. The figure is the wall time of each request on localhost: server time plus the
loopback round trip, so an upper bound of the server time (the issue's floor is 100 ms).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import JsonDict, latency_summary_ms, say
from bench.report import Row, ScenarioReport
from bench.scenario import Options, Stack
from bench.stack import issue_token

TENANT = "console"
FLOOR_MS = 100.0


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """One event of the seed."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": uuid.uuid4().hex,
        "tenant": TENANT,
        "type": kind,
        "actor": "user:admin",
        "occurred_at": now,
        "reason": "bench seed",
        **fields,
    }


def seed(users: int, groups: int, grants_per_user: int, me: str) -> list[dict[str, Any]]:
    """Users spread over groups nested three deep, roles, direct and group grants."""
    events = [
        event("define_role", role=f"r{i}", actions=["read", "write", f"a{i}"]) for i in range(5)
    ]
    for g in range(groups):
        if g:
            events.append(event("add_member", group=f"group:g{g // 3}", member=f"group:g{g}"))
        events.append(
            event("grant", principal=f"group:g{g}", resource=f"doc:{g}/*", permission="read")
        )
    for u in range(users):
        events.append(event("add_member", group=f"group:g{u % groups}", member=f"user:u{u}"))
        for k in range(grants_per_user):
            events.append(
                event(
                    "grant",
                    principal=f"user:u{u}",
                    resource=f"doc:{u % groups}/d{k}",
                    permission=f"role:r{k % 5}",
                )
            )
    events.append(event("add_member", group=f"group:g{groups - 1}", member=me))
    for k in range(40):
        events.append(event("grant", principal=me, resource=f"repo:r{k}", permission="read"))
    for k in range(0, 40, 4):
        events.append(event("revoke", principal=me, resource=f"repo:r{k}", permission="read"))
    return events


def sign_in(client: httpx.Client, token: str) -> None:
    """Through the sign-in form, as a browser does."""
    page = client.get("/console/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post("/console/signin", data={"csrf": csrf.group(1), "token": token})
    assert answer.status_code == 303, answer.text


def run(options: Options) -> ScenarioReport:
    """Run the console page timings and return the report."""
    users, groups, per_user = options.pick((300, 30, 5), (2000, 100, 10))
    repeats = options.pick(30, 100)
    report = ScenarioReport(
        "console_pages",
        "Console: time to serve each page (localhost wall time)",
        options.mode,
        config={"users": users, "groups": groups, "grants_per_user": per_user, "repeats": repeats},
    )
    with Stack("console", options) as stack:
        assert stack.api is not None
        token = issue_token(TENANT, "check,write,audit")
        me = f"service:bench-{os.getpid()}"
        events = seed(users, groups, per_user, me)
        with httpx.Client(
            base_url=stack.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as api:
            last = ""
            for start in range(0, len(events), 500):
                answer = api.post("/v1/events", json={"events": events[start : start + 500]})
                answer.raise_for_status()
                last = answer.json()["token"]
            sync = {"tenant": TENANT, "principal": "user:x", "resource": "x:y", "action": "z"}
            deadline = time.monotonic() + 300
            while (
                api.post("/v1/check", json={**sync, "consistency": {"at_least": last}}).status_code
                != 200
            ):
                assert time.monotonic() < deadline, "views did not catch up"
        say(f"console: seeded {len(events)} events")
        pages = {
            "access": "/console/access",
            "access search": "/console/access?q=repo",
            "can (allowed)": "/console/can?principal=user:u1&action=read&resource=doc:1/d0",
            "can (denied, nearest)": (
                "/console/can?principal=user:u1&action=deploy&resource=doc:1/d0"
            ),
            "who": "/console/who?resource=doc:1/d0",
            "directory": f"/console/directory?group=group:g0&principal={me}",
            "audit timeline + plot": f"/console/audit?principal={me}",
            "audit point in time": (
                f"/console/audit?at_principal=user:u1&at_action=read&at_resource=doc:1/d0"
                f"&at={datetime.now(UTC).isoformat().replace('+00:00', 'Z')}"
            ),
            "findings": "/console/findings",
            "changes": "/console/changes",
        }
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        # The same reads as JSON from the API, for scale: the machine is shared and loaded.
        api_reads = {
            "api: permissions JSON": f"/v1/tenants/{TENANT}/principals/{me}/permissions",
            "api: who-can JSON": f"/v1/tenants/{TENANT}/resources/doc:1%2Fd0/principals",
            "api: audit events JSON": f"/v1/tenants/{TENANT}/audit/events?principal={me}",
            "api: audit check JSON": (
                f"/v1/tenants/{TENANT}/audit/check?principal=user:u1&action=read"
                f"&resource=doc:1/d0&at={at}"
            ),
        }
        results: JsonDict = {}
        with httpx.Client(
            base_url=stack.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as api:
            for name, path in api_reads.items():
                assert api.get(path).status_code == 200, path
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    api.get(path).raise_for_status()
                    samples.append(time.perf_counter() - started)
                results[name] = latency_summary_ms(samples)
                say(f"console: {name}: {results[name]}")
                report.rows.append(
                    Row(f"{name}, p50", results[name]["p50"], "ms", note="reference, no floor")
                )
        with httpx.Client(base_url=stack.api.url, timeout=60) as browser:
            sign_in(browser, token)
            for name, path in pages.items():
                assert browser.get(path).status_code == 200, path  # warm
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    answer = browser.get(path)
                    samples.append(time.perf_counter() - started)
                    assert answer.status_code == 200, (path, answer.status_code)
                summary = latency_summary_ms(samples)
                results[name] = summary
                say(f"console: {name}: {summary}")
                p50 = summary.get("p50")
                report.rows.append(
                    Row(
                        f"console page {name}, p50",
                        p50,
                        "ms",
                        floor=f"{FLOOR_MS:g} ms",
                        passed=p50 is not None and p50 < FLOOR_MS,
                        note=f"p99 {summary.get('p99')} ms",
                    )
                )
        report.results = results
    return report
