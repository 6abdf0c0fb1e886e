"""The change stream (contract section 6) through real Kafka, the processor and Cassandra."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from permstore.core.consistency import LogPoint, decode_token, encode_token
from permstore.core.decisions import micros_to_rfc3339
from permstore.core.projector import to_micros
from tests.e2e.helpers import (
    add_member,
    assert_error,
    bearer,
    define_role,
    grant,
    publish,
    remove_member,
    revoke,
    sync,
)
from tests.integration.test_pipeline_reference import shift_history
from tests.reference_model import ReferenceState, apply_event, effective_rows
from tests.strategies import histories, universe
from tests.support.kafka_io import publish_events, read_topic
from tests.support.stack import StackEnvironment

pytestmark = pytest.mark.e2e
UNIVERSE = universe()
Record = dict[str, Any]


def path(tenant: str) -> str:
    return f"/v1/tenants/{tenant}/changes"


def page(http: httpx.Client, tenant: str, **params: Any) -> tuple[list[Record], str]:
    """One page of changes, asserting the contract's shape."""
    response = http.get(path(tenant), params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"changes", "next"}
    for record in body["changes"]:
        assert set(record) == {
            "tenant",
            "principal",
            "position",
            "recorded_at",
            "cause",
            "added",
            "removed",
        }
        assert record["tenant"] == tenant
    return body["changes"], body["next"]


def follow(
    http: httpx.Client,
    tenant: str,
    after: str,
    until: Callable[[list[Record]], bool],
    **params: Any,
) -> tuple[list[Record], str]:
    """Follow next (long-polling) until the records gathered satisfy until (30 s at most)."""
    gathered: list[Record] = []
    deadline = time.monotonic() + 30
    while not until(gathered):
        assert time.monotonic() < deadline, gathered
        records, after = page(http, tenant, after=after, wait=5, **params)
        gathered.extend(records)
    return gathered, after


def start(http: httpx.Client, tenant: str) -> str:
    """The tenant's current position, as a follower starting now gets it."""
    records, token = page(http, tenant)
    assert records == []
    return token


def test_grants_memberships_and_revokes_reach_a_follower_once(
    http: httpx.Client, tenant: str
) -> None:
    """Each write that changes an effective set yields one record per changed principal
    (groups included); one that changes nothing (a second path to a held row) yields none."""
    after = start(http, tenant)
    publish(http, [add_member(tenant, "group:eng", "user:ann", event_id="m1")])
    publish(http, [grant(tenant, "group:eng", "doc:x/*", "read", event_id="g1")])
    publish(http, [grant(tenant, "user:ann", "doc:x/*", "read", event_id="g2")])
    publish(http, [revoke(tenant, "group:eng", "doc:x/*", "read", event_id="r1")])
    token = publish(http, [revoke(tenant, "user:ann", "doc:x/*", "read", event_id="r2")])
    records, after = follow(http, tenant, after, lambda got: any(r["cause"] == "r2" for r in got))
    summary = [
        (
            r["cause"],
            r["principal"],
            [(a["resource"], a["action"]) for a in r["added"]],
            [(x["resource"], x["action"]) for x in r["removed"]],
        )
        for r in records
    ]
    assert summary == [
        ("g1", "group:eng", [("doc:x/*", "read")], []),
        ("g1", "user:ann", [("doc:x/*", "read")], []),
        ("r1", "group:eng", [], [("doc:x/*", "read")]),
        ("r2", "user:ann", [], [("doc:x/*", "read")]),
    ]
    assert records[0]["added"][0]["expires_at"] is None
    # A record's position is the event's consistency token: a check naming it sees the event.
    assert decode_token(tenant, records[-1]["position"]) == decode_token(tenant, token)
    more, again = page(http, tenant, after=after)
    assert more == [] and decode_token(tenant, again) == decode_token(tenant, after)


def test_pages_split_inside_an_event_without_losing_or_repeating(
    http: httpx.Client, tenant: str
) -> None:
    """A grant to a group of 24 changes 25 principals; pages of 7 give each exactly once, in
    principal order, and the cursors inside the event resume exactly."""
    members = [f"user:m{i:02d}" for i in range(24)]
    after = start(http, tenant)
    publish(http, [add_member(tenant, "group:big", m) for m in members])
    token = publish(http, [grant(tenant, "group:big", "doc:big", "write", event_id="fan")])
    sync(http, tenant, token)
    seen: list[str] = []
    while True:
        records, after = page(http, tenant, after=after, limit=7)
        if not records:
            break
        assert len(records) <= 7
        seen.extend(r["principal"] for r in records if r["cause"] == "fan")
    assert seen == sorted(["group:big", *members])


def test_a_long_poll_answers_as_soon_as_a_change_is_applied(
    http: httpx.Client, tenant: str
) -> None:
    """A waiting request returns the change within moments of the write, not at the wait's end."""
    after = start(http, tenant)
    answer: dict[str, Any] = {}

    def wait() -> None:
        began = time.monotonic()
        answer["page"] = page(http, tenant, after=after, wait=25)
        answer["seconds"] = time.monotonic() - began

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    publish(http, [grant(tenant, "user:lp", "doc:lp", "read", event_id="lp")])
    waiter.join(30)
    records, _ = answer["page"]
    assert [r["cause"] for r in records] == ["lp"]
    assert answer["seconds"] < 20


def test_server_sent_events_carry_token_ids_and_resume_from_last_event_id(
    api_url: str, http: httpx.Client, tenant: str, issue_token: Callable[..., str]
) -> None:
    """The stream sends each record as an event whose id resumes right after it."""
    after = start(http, tenant)
    publish(http, [grant(tenant, "user:s1", "doc:s", "read", event_id="s1")])
    publish(http, [grant(tenant, "user:s2", "doc:s", "read", event_id="s2")])
    headers = {**bearer(issue_token(tenant, "check")), "Accept": "text/event-stream"}

    def events(
        extra: dict[str, str], params: dict[str, str], count: int
    ) -> list[tuple[str, Record]]:
        found: list[tuple[str, Record]] = []
        with (
            httpx.Client(base_url=api_url, timeout=30) as client,
            client.stream(
                "GET", path(tenant), headers={**headers, **extra}, params=params
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event_id, data = "", ""
            for line in response.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    found.append((event_id, json.loads(data)))
                    event_id, data = "", ""
                    if len(found) == count:
                        break
        return found

    first = events({}, {"after": after}, 2)
    assert [r["cause"] for _, r in first] == ["s1", "s2"]
    assert all(event_id for event_id, _ in first)
    resumed = events({"Last-Event-ID": first[0][0]}, {}, 1)
    assert [r["cause"] for _, r in resumed] == ["s2"]


def test_bad_requests_name_the_field_and_tokens_stay_in_their_tenant(
    api_url: str, http: httpx.Client, tenant: str, issue_token: Callable[..., str]
) -> None:
    """A token that is not ours or of another tenant is a 400; limits out of range are 422;
    a missing token is a 401 and a token without the check scope a 403."""
    response = http.get(path(tenant), params={"after": "garbage"})
    assert assert_error(response, 400, field="after")["code"] == "invalid_token"
    other = encode_token(f"o{uuid.uuid4().hex[:10]}", LogPoint(0, 5))
    response = http.get(path(tenant), params={"after": other})
    assert assert_error(response, 400, field="after")["code"] == "invalid_token"
    for params in ({"wait": "31"}, {"limit": "0"}, {"limit": "1001"}, {"wait": "-1"}):
        assert http.get(path(tenant), params=params).status_code == 422, params
    with httpx.Client(base_url=api_url, timeout=10) as anonymous:
        assert anonymous.get(path(tenant)).status_code == 401
    with httpx.Client(
        base_url=api_url, headers=bearer(issue_token(tenant, "audit")), timeout=10
    ) as auditor:
        assert auditor.get(path(tenant)).status_code == 403
    with httpx.Client(
        base_url=api_url, headers=bearer(issue_token("elsewhere", "check")), timeout=10
    ) as stranger:
        assert stranger.get(path(tenant)).status_code == 403


def test_records_are_published_on_the_kafka_topic(
    http: httpx.Client, tenant: str, test_env: StackEnvironment
) -> None:
    """The same records go to the changes topic, keyed by tenant."""
    token = publish(
        http,
        [
            define_role(tenant, "editor", ["read", "write"], event_id="d1"),
            grant(tenant, "user:k", "doc:k", "role:editor", event_id="k1"),
            remove_member(tenant, "group:none", "user:k", event_id="k2"),
        ],
    )
    sync(http, tenant, token)
    env = test_env.env
    topic = env["PERMSTORE_CHANGES_TOPIC"]
    bootstrap = env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    mine = [
        json.loads(r.value)
        for r in read_topic(bootstrap, topic, timeout=15)
        if r.key == tenant.encode()
    ]
    assert [(r["cause"], r["principal"]) for r in mine] == [("k1", "user:k")]
    assert sorted((a["resource"], a["action"]) for a in mine[0]["added"]) == [
        ("doc:k", "read"),
        ("doc:k", "write"),
    ]


def reference_views(events: list[dict[str, Any]]) -> dict[str, dict[tuple[str, str], str | None]]:
    """principal -> (pattern, action) -> expires_at, after every event, by the reference."""
    state = ReferenceState()
    seen: set[str] = set()
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            apply_event(state, event)
    views = {
        principal: {
            row: micros_to_rfc3339(to_micros(expires))
            for row, expires in effective_rows(state, principal).items()
        }
        for principal in UNIVERSE.principals
    }
    return {principal: rows for principal, rows in views.items() if rows}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories(max_events=25))
def test_a_follower_rebuilds_the_reference_views_from_the_stream(
    history: list[dict[str, Any]],
    test_env: StackEnvironment,
    api_url: str,
    issue_token: Callable[..., str],
) -> None:
    """Generated histories through the real pipeline: applying every record's added and
    removed, in order, to empty views gives the reference model's effective sets and expiries,
    and no (position, principal) comes twice."""
    tenant = f"c{uuid.uuid4().hex[:12]}"
    events = shift_history(history, tenant, datetime.now(UTC))
    with httpx.Client(base_url=api_url, headers=bearer(issue_token(tenant)), timeout=30) as http:
        after = start(http, tenant)
        if not events:
            return
        token = publish_events(
            test_env.env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            test_env.env["PERMSTORE_EVENTS_TOPIC"],
            events,
        )
        sync(http, tenant, token)
        views: dict[str, dict[tuple[str, str], str | None]] = {}
        keys: list[tuple[str, str]] = []
        while True:
            records, after = page(http, tenant, after=after, limit=5)
            if not records:
                break
            for record in records:
                keys.append((record["position"], record["principal"]))
                held = views.setdefault(record["principal"], {})
                for item in record["removed"]:
                    held.pop((item["resource"], item["action"]), None)
                for item in record["added"]:
                    held[item["resource"], item["action"]] = item["expires_at"]
        assert len(keys) == len(set(keys))
        assert {p: v for p, v in views.items() if v} == reference_views(events)
