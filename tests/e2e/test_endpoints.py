"""Every endpoint of contract section 4 over HTTP, with realistic data and exact answers."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    add_member,
    all_pages,
    audit_check_path,
    audit_events_path,
    check,
    define_role,
    delete_role,
    grant,
    now_plus,
    parse_time,
    permissions_path,
    publish,
    publish_each,
    remove_member,
    revoke,
    rfc3339,
    sync,
    who_can_path,
)

pytestmark = pytest.mark.e2e


def grant_of(reason: dict[str, Any]) -> tuple[str, str, str]:
    """The (principal, resource, permission) of a reason's grant."""
    g = reason["grant"]
    return g["principal"], g["resource"], g["permission"]


# --- POST /v1/events --------------------------------------------------------------------------


def test_post_events_accepts_every_type_and_records_them_in_order(
    http: httpx.Client, tenant: str
) -> None:
    """202 with the count and a token; the log then holds the events, in request order."""
    events = [
        define_role(tenant, "editor", ["read", "write"]),
        add_member(tenant, "group:eng", "user:alice"),
        grant(tenant, "group:eng", "doc:acme/eng/*", "role:editor", reason="JIRA-1"),
        revoke(tenant, "user:ghost", "doc:acme/x", "read"),
        remove_member(tenant, "group:eng", "user:nobody"),
        delete_role(tenant, "unused"),
    ]
    response = http.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"accepted", "token"}
    assert body["accepted"] == 6
    sync(http, tenant, body["token"])

    logged, _ = all_pages(http, audit_events_path(tenant), "events", {}, 100)
    assert [e["event"]["event_id"] for e in logged] == [e["event_id"] for e in events]
    for sent, got in zip(events, logged, strict=True):
        recorded = dict(got["event"])
        assert parse_time(recorded.pop("occurred_at")) == parse_time(sent["occurred_at"])
        assert recorded == {k: v for k, v in sent.items() if k != "occurred_at"}
    positions = [e["position"] for e in logged]
    assert positions == sorted(positions) and len(set(positions)) == 6

    allowed = check(http, tenant, "user:alice", "doc:acme/eng/spec", "write")
    assert allowed["allowed"] is True


def test_post_500_events_in_one_request(http: httpx.Client, tenant: str) -> None:
    """The upper bound of a batch is accepted whole, and every event takes effect."""
    events = [grant(tenant, f"user:u{i}", f"doc:bulk/{i}", "read") for i in range(500)]
    token = publish(http, events)
    sync(http, tenant, token)
    for i in (0, 137, 499):
        assert check(http, tenant, f"user:u{i}", f"doc:bulk/{i}", "read")["allowed"] is True
    assert check(http, tenant, "user:u1", "doc:bulk/2", "read")["allowed"] is False


def test_repeated_event_id_is_ignored(http: httpx.Client, tenant: str) -> None:
    """A second event with an id already used in the tenant changes nothing."""
    first = grant(tenant, "user:alice", "doc:retry", "read")
    publish(http, [first])
    again = revoke(tenant, "user:alice", "doc:retry", "read")
    again["event_id"] = first["event_id"]
    token = publish(http, [again])
    answer = check(http, tenant, "user:alice", "doc:retry", "read", at_least=token)
    assert answer["allowed"] is True


# --- POST /v1/check ---------------------------------------------------------------------------


def test_check_direct_grant_reason(http: httpx.Client, tenant: str) -> None:
    """A direct grant allows exactly its triple, with a reason naming the grant."""
    token = publish(http, [grant(tenant, "user:alice", "doc:acme/eng/spec-1", "read")])
    answer = check(http, tenant, "user:alice", "doc:acme/eng/spec-1", "read", at_least=token)
    assert answer["allowed"] is True
    [reason] = answer["reasons"]
    assert reason["kind"] == "direct"
    assert grant_of(reason) == ("user:alice", "doc:acme/eng/spec-1", "read")
    assert reason["via_group"] is None and reason["via_role"] is None
    assert reason["pattern"] == "doc:acme/eng/spec-1"
    assert reason["expires_at"] is None
    assert isinstance(reason["description"], str) and reason["description"]
    assert isinstance(answer["token"], str) and answer["token"]

    for principal, resource, action in [
        ("user:alice", "doc:acme/eng/spec-1", "write"),
        ("user:bob", "doc:acme/eng/spec-1", "read"),
        ("user:alice", "doc:acme/eng/spec-2", "read"),
        ("user:alice", "doc:acme/eng/spec-1/child", "read"),
        ("service:alice", "doc:acme/eng/spec-1", "read"),
    ]:
        denied = check(http, tenant, principal, resource, action)
        assert denied == {"allowed": False, "token": denied["token"], "reasons": []}


def test_check_through_nested_groups_with_a_cycle(http: httpx.Client, tenant: str) -> None:
    """Membership chains confer the grant of the outer group; cycles are harmless."""
    token = publish(
        http,
        [
            add_member(tenant, "group:eng", "user:bob"),
            add_member(tenant, "group:all", "group:eng"),
            add_member(tenant, "group:eng", "group:all"),  # a cycle
            add_member(tenant, "group:self", "group:self"),  # a group inside itself
            add_member(tenant, "group:self", "service:ci"),
            grant(tenant, "group:all", "repo:payments", "deploy"),
            grant(tenant, "group:self", "repo:payments", "read"),
        ],
    )
    answer = check(http, tenant, "user:bob", "repo:payments", "deploy", at_least=token)
    assert answer["allowed"] is True
    [reason] = answer["reasons"]
    assert reason["kind"] == "group"
    assert reason["via_group"] == "group:all"
    assert grant_of(reason) == ("group:all", "repo:payments", "deploy")

    assert check(http, tenant, "service:ci", "repo:payments", "read")["allowed"] is True
    assert check(http, tenant, "user:bob", "repo:payments", "read")["allowed"] is False
    # A group checked as a principal holds what it reaches too.
    assert check(http, tenant, "group:eng", "repo:payments", "deploy")["allowed"] is True

    token = publish(http, [remove_member(tenant, "group:all", "group:eng")])
    # Only the edge group:all -> group:eng is left, so bob no longer reaches group:all.
    after = check(http, tenant, "user:bob", "repo:payments", "deploy", at_least=token)
    assert after["allowed"] is False and after["reasons"] == []


def test_check_names_the_whole_membership_chain_and_follows_its_changes(
    http: httpx.Client, tenant: str
) -> None:
    """via_chain climbs from the principal to the granting group; a removed edge reroutes it."""
    token = publish(
        http,
        [
            add_member(tenant, "group:team", "user:cy"),
            add_member(tenant, "group:dept", "group:team"),
            add_member(tenant, "group:org", "group:dept"),
            add_member(tenant, "group:org", "group:guild"),
            add_member(tenant, "group:guild", "group:side"),
            add_member(tenant, "group:side", "user:cy"),
            add_member(tenant, "group:side", "group:side"),
            grant(tenant, "group:org", "repo:infra", "deploy"),
        ],
    )
    [reason] = check(http, tenant, "user:cy", "repo:infra", "deploy", at_least=token)["reasons"]
    # Both routes have three hops; the one through the alphabetically first group wins.
    assert reason["via_chain"] == ["group:side", "group:guild", "group:org"]
    assert reason["via_group"] == "group:org"
    assert "group:side -> group:guild -> group:org" in reason["description"]

    token = publish(http, [remove_member(tenant, "group:guild", "group:side")])
    [reason] = check(http, tenant, "user:cy", "repo:infra", "deploy", at_least=token)["reasons"]
    assert reason["via_chain"] == ["group:team", "group:dept", "group:org"]
    listed, _ = all_pages(http, permissions_path(tenant, "user:cy"), "permissions", {}, 10)
    assert [item["reasons"][0]["via_chain"] for item in listed] == [reason["via_chain"]]
    who, _ = all_pages(http, who_can_path(tenant, "repo:infra"), "principals", {}, 10)
    assert [item["reasons"][0]["via_chain"] for item in who] == [reason["via_chain"]]
    batch = http.post(
        "/v1/check/batch",
        json={
            "tenant": tenant,
            "checks": [{"principal": "user:cy", "resource": "repo:infra", "action": "deploy"}],
        },
    )
    assert batch.json()["results"][0]["reasons"] == [reason]
    past = audit_check(http, tenant, "user:cy", "repo:infra", "deploy", now_plus(0))
    assert past["reasons"] == [reason]


def test_check_through_a_role(http: httpx.Client, tenant: str) -> None:
    """role:N confers N's actions; redefinition replaces them; delete and define again."""
    token = publish(
        http,
        [
            define_role(tenant, "editor", ["read", "write"]),
            grant(tenant, "user:carol", "repo:payments", "role:editor"),
        ],
    )
    answer = check(http, tenant, "user:carol", "repo:payments", "write", at_least=token)
    assert answer["allowed"] is True
    [reason] = answer["reasons"]
    assert reason["via_role"] == "editor" and reason["kind"] == "direct"
    assert grant_of(reason) == ("user:carol", "repo:payments", "role:editor")
    assert check(http, tenant, "user:carol", "repo:payments", "delete")["allowed"] is False

    token = publish(http, [define_role(tenant, "editor", ["read", "delete"])])
    assert check(http, tenant, "user:carol", "repo:payments", "write", token)["allowed"] is False
    assert check(http, tenant, "user:carol", "repo:payments", "delete")["allowed"] is True

    token = publish(http, [delete_role(tenant, "editor")])
    assert check(http, tenant, "user:carol", "repo:payments", "read", token)["allowed"] is False

    token = publish(http, [define_role(tenant, "editor", ["read"])])
    assert check(http, tenant, "user:carol", "repo:payments", "read", token)["allowed"] is True


def test_check_through_wildcard_patterns(http: httpx.Client, tenant: str) -> None:
    """T:p/* covers descendants only; T:* covers every resource of type T and no other."""
    token = publish(
        http,
        [
            grant(tenant, "user:dave", "doc:acme/eng/*", "read"),
            grant(tenant, "user:erin", "doc:*", "read"),
        ],
    )
    sync(http, tenant, token)
    cases = [
        ("user:dave", "doc:acme/eng/spec", True),
        ("user:dave", "doc:acme/eng/a/b/c", True),
        ("user:dave", "doc:acme/eng", False),
        ("user:dave", "doc:acme/engineering/x", False),
        ("user:dave", "doc:acme/ops/x", False),
        ("user:dave", "wiki:acme/eng/x", False),
        ("user:erin", "doc:anything", True),
        ("user:erin", "doc:a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", True),
        ("user:erin", "docs:anything", False),
    ]
    for principal, resource, expected in cases:
        answer = check(http, tenant, principal, resource, "read")
        assert answer["allowed"] is expected, (principal, resource)
        if expected:
            [reason] = answer["reasons"]
            assert reason["pattern"] in ("doc:acme/eng/*", "doc:*")
            assert reason["pattern"] == reason["grant"]["resource"]


def test_check_names_every_path_that_grants(http: httpx.Client, tenant: str) -> None:
    """Direct, group and role paths to the same permission each appear as a reason."""
    token = publish(
        http,
        [
            define_role(tenant, "viewer", ["read"]),
            add_member(tenant, "group:readers", "user:fay"),
            grant(tenant, "user:fay", "doc:x/y", "read"),
            grant(tenant, "group:readers", "doc:x/*", "read"),
            grant(tenant, "user:fay", "doc:*", "role:viewer"),
        ],
    )
    answer = check(http, tenant, "user:fay", "doc:x/y", "read", at_least=token)
    assert sorted(grant_of(r) for r in answer["reasons"]) == [
        ("group:readers", "doc:x/*", "read"),
        ("user:fay", "doc:*", "role:viewer"),
        ("user:fay", "doc:x/y", "read"),
    ]
    kinds = Counter(r["kind"] for r in answer["reasons"])
    assert kinds == {"direct": 2, "group": 1}


def test_check_expiry_in_the_past_and_the_future(http: httpx.Client, tenant: str) -> None:
    """An expired grant does not confer; a future expiry does and is reported; a regrant
    of the same triple replaces the expiry."""
    future = now_plus(3600)
    token = publish(
        http,
        [
            grant(tenant, "user:gus", "doc:old", "read", expires_at=now_plus(-60)),
            grant(tenant, "user:gus", "doc:new", "read", expires_at=future),
        ],
    )
    old = check(http, tenant, "user:gus", "doc:old", "read", at_least=token)
    assert old["allowed"] is False
    new = check(http, tenant, "user:gus", "doc:new", "read")
    assert new["allowed"] is True
    assert parse_time(new["reasons"][0]["expires_at"]) == parse_time(future)

    token = publish(
        http,
        [
            grant(tenant, "user:gus", "doc:old", "read"),  # no expiry: never expires
            grant(tenant, "user:gus", "doc:new", "read", expires_at=now_plus(-1)),
        ],
    )
    old = check(http, tenant, "user:gus", "doc:old", "read", at_least=token)
    assert old["allowed"] is True and old["reasons"][0]["expires_at"] is None
    assert check(http, tenant, "user:gus", "doc:new", "read")["allowed"] is False


def test_grant_lapses_at_its_expiry_without_any_new_event(http: httpx.Client, tenant: str) -> None:
    """Expiry is evaluated at the time of the check, not when the grant was applied."""
    expires = now_plus(4)
    token = publish(http, [grant(tenant, "user:hal", "doc:soon", "read", expires_at=expires)])
    assert check(http, tenant, "user:hal", "doc:soon", "read", at_least=token)["allowed"] is True
    remaining = (parse_time(expires) - parse_time(now_plus(0))).total_seconds()
    assert remaining > 0, "the stack was too slow to observe the grant before its expiry"
    time.sleep(max(0.0, remaining) + 0.3)
    assert check(http, tenant, "user:hal", "doc:soon", "read")["allowed"] is False


# --- POST /v1/check/batch ---------------------------------------------------------------------


def test_batch_of_1000_checks_answers_in_request_order(http: httpx.Client, tenant: str) -> None:
    """Mixed allowed and denied answers come back in the order of the request."""
    users = [f"user:u{k}" for k in range(10)]
    events = [grant(tenant, users[k], f"doc:b/{k}/*", "read") for k in range(10)]
    events += [add_member(tenant, "group:odd", users[k]) for k in range(1, 10, 2)]
    events.append(grant(tenant, "group:odd", "doc:b/*", "write"))
    token = publish(http, events)

    checks = []
    expected = []
    for i in range(1000):
        who, folder, action = i % 10, (i // 10) % 10, ("read", "write", "delete")[i % 3]
        checks.append(
            {"principal": users[who], "resource": f"doc:b/{folder}/f{i}", "action": action}
        )
        if action == "read":
            expected.append(who == folder)
        elif action == "write":
            expected.append(who % 2 == 1)
        else:
            expected.append(False)
    assert 0 < sum(expected) < 1000

    response = http.post(
        "/v1/check/batch",
        json={"tenant": tenant, "checks": checks, "consistency": {"at_least": token}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results", "token"}
    assert len(body["results"]) == 1000
    assert [r["allowed"] for r in body["results"]] == expected
    for item, result in zip(checks, body["results"], strict=True):
        if result["allowed"]:
            [reason] = result["reasons"]
            if item["action"] == "read":
                assert grant_of(reason)[0] == item["principal"]
            else:
                assert reason["via_group"] == "group:odd"
        else:
            assert result["reasons"] == []


def test_batch_of_one_matches_single_check(http: httpx.Client, tenant: str) -> None:
    """The smallest batch answers what /v1/check answers."""
    token = publish(http, [grant(tenant, "user:ida", "doc:one", "read")])
    single = check(http, tenant, "user:ida", "doc:one", "read", at_least=token)
    response = http.post(
        "/v1/check/batch",
        json={
            "tenant": tenant,
            "checks": [{"principal": "user:ida", "resource": "doc:one", "action": "read"}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"allowed": True, "reasons": single["reasons"]},
    ]


# --- GET permissions --------------------------------------------------------------------------


def test_permissions_pages_yield_every_item_exactly_once(http: httpx.Client, tenant: str) -> None:
    """Direct, group, role and expiring grants; expired ones are absent; limit=4 pages."""
    pat = "user:pat"
    future = now_plus(3600)
    events = [grant(tenant, pat, f"doc:p/{i:02d}", "read") for i in range(23)]
    events += [
        grant(tenant, pat, f"doc:p/{i:02d}x", "read", expires_at=now_plus(-5)) for i in range(4)
    ]
    events += [add_member(tenant, "group:pg", pat)]
    events += [grant(tenant, "group:pg", f"repo:r{i}", "write") for i in range(5)]
    events += [grant(tenant, pat, "repo:r0", "write")]  # a second path to (repo:r0, write)
    events += [define_role(tenant, "viewer", ["read", "list"])]
    events += [grant(tenant, pat, "app:*", "role:viewer")]
    events += [grant(tenant, pat, "doc:p/zz", "read", expires_at=future)]
    later = now_plus(7200)
    events += [grant(tenant, "group:pg", "doc:p/zz", "read", expires_at=later)]
    events += [grant(tenant, "user:other", "doc:p/00", "read")]
    sync(http, tenant, publish(http, events))

    items, pages = all_pages(http, permissions_path(tenant, pat), "permissions", {}, 4)
    keys = [(i["resource"], i["action"]) for i in items]
    assert len(keys) == len(set(keys)), "an item was repeated across pages"
    expected = {(f"doc:p/{i:02d}", "read") for i in range(23)}
    expected |= {(f"repo:r{i}", "write") for i in range(5)}
    expected |= {("app:*", "read"), ("app:*", "list"), ("doc:p/zz", "read")}
    assert set(keys) == expected
    assert pages >= len(expected) // 4

    by_key = {(i["resource"], i["action"]): i for i in items}
    assert len(by_key["repo:r0", "write"]["reasons"]) == 2
    assert {r["kind"] for r in by_key["repo:r0", "write"]["reasons"]} == {"direct", "group"}
    assert by_key["repo:r1", "write"]["reasons"][0]["via_group"] == "group:pg"
    assert by_key["app:*", "list"]["reasons"][0]["via_role"] == "viewer"
    # Two expiring paths: the permission lapses when the later one does.
    assert len(by_key["doc:p/zz", "read"]["reasons"]) == 2
    assert parse_time(by_key["doc:p/zz", "read"]["expires_at"]) == parse_time(later)
    assert by_key["doc:p/00", "read"]["expires_at"] is None

    # One page that holds everything has no next cursor.
    whole = http.get(permissions_path(tenant, pat), params={"limit": 1000})
    assert whole.status_code == 200
    assert whole.json()["next_cursor"] is None
    assert len(whole.json()["permissions"]) == len(expected)

    # A group lists the permissions it holds itself.
    group_items, _ = all_pages(http, permissions_path(tenant, "group:pg"), "permissions", {}, 2)
    assert {(i["resource"], i["action"]) for i in group_items} == {
        (f"repo:r{i}", "write") for i in range(5)
    } | {("doc:p/zz", "read")}


def test_permissions_limit_defaults_to_100(http: httpx.Client, tenant: str) -> None:
    """Without limit a page holds 100 items and a cursor to the rest."""
    events = [grant(tenant, "user:many", f"doc:m/{i:03d}", "read") for i in range(130)]
    sync(http, tenant, publish(http, events))
    first = http.get(permissions_path(tenant, "user:many"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["permissions"]) == 100
    assert body["next_cursor"]
    assert isinstance(body["token"], str)
    rest = http.get(permissions_path(tenant, "user:many"), params={"cursor": body["next_cursor"]})
    assert rest.status_code == 200
    assert rest.json()["next_cursor"] is None
    seen = [p["resource"] for p in body["permissions"] + rest.json()["permissions"]]
    assert sorted(seen) == [f"doc:m/{i:03d}" for i in range(130)]


def test_permissions_of_an_unknown_principal_is_an_empty_page(
    http: httpx.Client, tenant: str
) -> None:
    """No grants: an empty list and no cursor."""
    response = http.get(permissions_path(tenant, "service:nobody"))
    assert response.status_code == 200
    assert response.json()["permissions"] == []
    assert response.json()["next_cursor"] is None


# --- GET who-can ------------------------------------------------------------------------------


def who_can_fixture(tenant: str) -> list[dict[str, Any]]:
    """Events giving doc:w/a/b a mix of direct, nested-group, wildcard and role holders."""
    events = [grant(tenant, f"user:d{i:02d}", "doc:w/a/b", "read") for i in range(10)]
    events += [
        add_member(tenant, "group:team", "user:m1"),
        add_member(tenant, "group:team", "service:s1"),
        add_member(tenant, "group:team", "group:sub"),
        add_member(tenant, "group:sub", "user:m2"),
        add_member(tenant, "group:sub", "user:m3"),
        add_member(tenant, "group:sub", "user:d00"),
        add_member(tenant, "group:sub", "group:team"),  # a cycle
        grant(tenant, "group:team", "doc:w/*", "read"),
        grant(tenant, "user:x", "doc:*", "write"),
        grant(tenant, "user:y", "doc:w/a/other", "read"),
        grant(tenant, "user:z", "doc:w/a/b", "read", expires_at=now_plus(-10)),
        define_role(tenant, "editor", ["read", "write"]),
        grant(tenant, "user:e", "doc:w/a/*", "role:editor"),
        grant(tenant, "group:writers", "doc:w/a/b", "write"),  # a group with no members
    ]
    return events


def test_who_can_pages_expand_groups_and_never_list_them(http: httpx.Client, tenant: str) -> None:
    """Every (user or service, action) exactly once over pages of 2; groups never appear."""
    sync(http, tenant, publish(http, who_can_fixture(tenant)))
    path = who_can_path(tenant, "doc:w/a/b")
    items, pages = all_pages(http, path, "principals", {}, 2)
    keys = [(i["principal"], i["action"]) for i in items]
    assert len(keys) == len(set(keys)), "an item was repeated across pages"
    assert not [k for k in keys if k[0].startswith("group:")]
    expected = {(f"user:d{i:02d}", "read") for i in range(10)}
    expected |= {(p, "read") for p in ("user:m1", "service:s1", "user:m2", "user:m3", "user:e")}
    expected |= {("user:x", "write"), ("user:e", "write")}
    assert set(keys) == expected
    assert pages >= len(expected) // 2

    by_key = {(i["principal"], i["action"]): i for i in items}
    d00 = by_key["user:d00", "read"]["reasons"]
    assert sorted(r["kind"] for r in d00) == ["direct", "group"]
    assert by_key["user:m2", "read"]["reasons"][0]["via_group"] == "group:team"
    assert by_key["user:e", "write"]["reasons"][0]["via_role"] == "editor"

    for limit in (1, 3, 7, 1000):
        again, _ = all_pages(http, path, "principals", {}, limit)
        assert sorted((i["principal"], i["action"]) for i in again) == sorted(keys), limit


def test_who_can_action_filter_and_other_resources(http: httpx.Client, tenant: str) -> None:
    """?action= keeps one action; a resource only the type wildcard covers lists its holder."""
    sync(http, tenant, publish(http, who_can_fixture(tenant)))
    writers, _ = all_pages(
        http, who_can_path(tenant, "doc:w/a/b"), "principals", {"action": "write"}, 1
    )
    assert sorted(i["principal"] for i in writers) == ["user:e", "user:x"]
    assert {i["action"] for i in writers} == {"write"}

    top, _ = all_pages(http, who_can_path(tenant, "doc:w"), "principals", {}, 10)
    assert [(i["principal"], i["action"]) for i in top] == [("user:x", "write")]

    other, _ = all_pages(http, who_can_path(tenant, "doc:w/a/other"), "principals", {}, 10)
    assert ("user:y", "read") in {(i["principal"], i["action"]) for i in other}
    assert ("user:d00", "read") in {(i["principal"], i["action"]) for i in other}  # via team
    assert ("user:d01", "read") not in {(i["principal"], i["action"]) for i in other}

    nobody = http.get(who_can_path(tenant, "wiki:none"))
    assert nobody.status_code == 200
    assert nobody.json()["principals"] == [] and nobody.json()["next_cursor"] is None


def test_who_can_path_accepts_an_unencoded_slash_resource(http: httpx.Client, tenant: str) -> None:
    """A resource in the path may contain '/' whether or not the client encoded it."""
    sync(http, tenant, publish(http, [grant(tenant, "user:sl", "doc:a/b/c", "read")]))
    raw = http.get(f"/v1/tenants/{tenant}/resources/doc:a/b/c/principals")
    encoded = http.get(who_can_path(tenant, "doc:a/b/c"))
    assert raw.status_code == encoded.status_code == 200
    assert raw.json()["principals"] == encoded.json()["principals"]
    assert [p["principal"] for p in raw.json()["principals"]] == ["user:sl"]


# --- GET audit events -------------------------------------------------------------------------


def test_audit_events_filters_paging_and_time_window(http: httpx.Client, tenant: str) -> None:
    """By principal (as principal, group, member), by resource, whole log, from/to, paging."""
    log = [
        grant(tenant, "user:al", "doc:a/1", "read"),  # 0
        add_member(tenant, "group:g", "user:al"),  # 1
        add_member(tenant, "group:top", "group:g"),  # 2
        grant(tenant, "group:g", "doc:a/2", "write"),  # 3
        grant(tenant, "user:other", "doc:a/1", "read"),  # 4
        revoke(tenant, "user:al", "doc:a/1", "read"),  # 5
        define_role(tenant, "viewer", ["read"]),  # 6
        remove_member(tenant, "group:g", "user:al"),  # 7
    ]
    sync(http, tenant, publish_each(http, log))
    ids = [e["event_id"] for e in log]
    path = audit_events_path(tenant)

    def ids_for(params: dict[str, Any], limit: int = 100) -> list[str]:
        items, _ = all_pages(http, path, "events", params, limit)
        return [i["event"]["event_id"] for i in items]

    everything, pages = all_pages(http, path, "events", {}, 3)
    assert [e["event"]["event_id"] for e in everything] == ids
    assert pages == 3
    times = [parse_time(e["recorded_at"]) for e in everything]
    assert times == sorted(times)
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions)

    assert ids_for({"principal": "user:al"}) == [ids[i] for i in (0, 1, 5, 7)]
    assert ids_for({"principal": "group:g"}) == [ids[i] for i in (1, 2, 3, 7)]
    assert ids_for({"principal": "group:g"}, limit=1) == [ids[i] for i in (1, 2, 3, 7)]
    assert ids_for({"principal": "group:top"}) == [ids[2]]
    assert ids_for({"resource": "doc:a/1"}) == [ids[i] for i in (0, 4, 5)]
    assert ids_for({"resource": "doc:a/1"}, limit=2) == [ids[i] for i in (0, 4, 5)]
    assert ids_for({"principal": "user:al", "resource": "doc:a/2"}) == [
        ids[i] for i in (0, 1, 3, 5, 7)
    ]
    assert ids_for({"principal": "user:nobody"}) == []

    start, end = everything[2]["recorded_at"], everything[5]["recorded_at"]
    assert ids_for({"from": start, "to": end}) == ids[2:6]
    assert ids_for({"from": start, "to": end}, limit=1) == ids[2:6]
    assert ids_for({"from": start}) == ids[2:]
    assert ids_for({"to": end}) == ids[:6]
    assert ids_for({"principal": "user:al", "from": start, "to": end}) == [ids[5]]
    after_all = rfc3339(parse_time(everything[-1]["recorded_at"]) + timedelta(seconds=1))
    assert ids_for({"from": after_all}) == []


# --- GET audit check --------------------------------------------------------------------------


def audit_check(
    http: httpx.Client, tenant: str, principal: str, resource: str, action: str, at: str
) -> dict[str, Any]:
    """GET the audit check, asserting 200 and its shape."""
    response = http.get(
        audit_check_path(tenant),
        params={"principal": principal, "resource": resource, "action": action, "at": at},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["allowed"] is bool(body["reasons"])
    assert parse_time(body["at"]) == parse_time(at)
    return body


def recorded_times(http: httpx.Client, tenant: str) -> dict[str, str]:
    """recorded_at of every event of the tenant, by event id."""
    items, _ = all_pages(http, audit_events_path(tenant), "events", {}, 1000)
    return {i["event"]["event_id"]: i["recorded_at"] for i in items}


def shifted(text: str, seconds: float) -> str:
    """An RFC 3339 time moved by seconds."""
    return rfc3339(parse_time(text) + timedelta(seconds=seconds))


def test_audit_check_before_between_and_after_grant_and_revoke(
    http: httpx.Client, tenant: str
) -> None:
    """The answer at a past time uses exactly the events recorded up to it."""
    granted = grant(tenant, "user:ac", "doc:c/1", "read")
    publish(http, [granted])
    time.sleep(0.05)
    revoked = revoke(tenant, "user:ac", "doc:c/1", "read")
    sync(http, tenant, publish(http, [revoked]))
    times = recorded_times(http, tenant)
    t_grant, t_revoke = times[granted["event_id"]], times[revoked["event_id"]]
    assert parse_time(t_grant) < parse_time(t_revoke)
    middle = rfc3339(parse_time(t_grant) + (parse_time(t_revoke) - parse_time(t_grant)) / 2)

    def allowed_at(at: str) -> bool:
        return bool(audit_check(http, tenant, "user:ac", "doc:c/1", "read", at)["allowed"])

    assert allowed_at("2000-01-01T00:00:00Z") is False
    assert allowed_at(shifted(t_grant, -0.001)) is False
    assert allowed_at(t_grant) is True, "an event recorded at t counts at t"
    assert allowed_at(middle) is True
    assert allowed_at(shifted(t_revoke, -0.001)) is True
    assert allowed_at(t_revoke) is False
    assert allowed_at(shifted(t_revoke, 1)) is False
    assert check(http, tenant, "user:ac", "doc:c/1", "read")["allowed"] is False

    body = audit_check(http, tenant, "user:ac", "doc:c/1", "read", middle)
    [reason] = body["reasons"]
    assert grant_of(reason) == ("user:ac", "doc:c/1", "read")
    assert body["replayed_events"] >= 1


def test_audit_check_follows_membership_and_expiry_over_time(
    http: httpx.Client, tenant: str
) -> None:
    """Group membership and grant expiry at past times, as section 3 defines them."""
    joined = add_member(tenant, "group:h", "user:hm")
    granted = grant(tenant, "group:h", "doc:h/*", "read")
    left = remove_member(tenant, "group:h", "user:hm")
    expires = now_plus(4)
    temporary = grant(tenant, "user:tmp", "doc:h/t", "read", expires_at=expires)
    sync(http, tenant, publish_each(http, [joined, granted, left, temporary]))
    times = recorded_times(http, tenant)

    def allowed_at(principal: str, resource: str, at: str) -> bool:
        return bool(audit_check(http, tenant, principal, resource, "read", at)["allowed"])

    t_join, t_grant, t_left = (times[e["event_id"]] for e in (joined, granted, left))
    assert allowed_at("user:hm", "doc:h/x", shifted(t_grant, -0.001)) is False
    assert allowed_at("user:hm", "doc:h/x", t_grant) is True
    assert allowed_at("user:hm", "doc:h/x", shifted(t_left, -0.001)) is True
    assert allowed_at("user:hm", "doc:h/x", t_left) is False
    assert allowed_at("group:h", "doc:h/x", t_left) is True
    assert allowed_at("user:hm", "doc:h/x", t_join) is False

    remaining = (parse_time(expires) - parse_time(now_plus(0))).total_seconds()
    time.sleep(max(0.0, remaining) + 0.2)
    t_temp = times[temporary["event_id"]]
    assert parse_time(t_temp) < parse_time(expires), "the grant was recorded after its expiry"
    assert allowed_at("user:tmp", "doc:h/t", t_temp) is True
    assert allowed_at("user:tmp", "doc:h/t", shifted(expires, -0.01)) is True
    assert allowed_at("user:tmp", "doc:h/t", expires) is False, "expires_at must be later than t"
    assert allowed_at("user:tmp", "doc:h/t", shifted(expires, 1)) is False


def test_audit_check_across_a_state_snapshot(http: httpx.Client, tenant: str) -> None:
    """Over 5000 events (past the processor's snapshot threshold) past answers stay exact,
    and are computed from a snapshot plus the events after it."""
    first = [
        grant(tenant, "user:sa", "doc:s/1", "read"),
        add_member(tenant, "group:sg", "user:sb"),
        grant(tenant, "group:sg", "doc:s/*", "write"),
    ]
    publish(http, first)
    filler = [grant(tenant, f"user:f{i}", f"doc:f/{i}", "read") for i in range(5200)]
    for start in range(0, len(filler), 500):
        publish(http, filler[start : start + 500])
    last = [
        revoke(tenant, "user:sa", "doc:s/1", "read"),
        remove_member(tenant, "group:sg", "user:sb"),
    ]
    sync(http, tenant, publish(http, last))

    def recorded(principal: str) -> list[str]:
        items, _ = all_pages(
            http, audit_events_path(tenant), "events", {"principal": principal}, 10
        )
        return [i["recorded_at"] for i in items]

    t_first = recorded("user:sa")[0]
    t_filler_end = recorded("user:f5199")[0]
    t_last = recorded("user:sa")[-1]
    assert parse_time(t_first) <= parse_time(t_filler_end) <= parse_time(t_last)

    def at(principal: str, resource: str, action: str, moment: str) -> dict[str, Any]:
        return audit_check(http, tenant, principal, resource, action, moment)

    before = shifted(t_first, -0.001)
    assert at("user:sa", "doc:s/1", "read", before)["allowed"] is False
    assert at("user:sa", "doc:s/1", "read", t_first)["allowed"] is True
    assert at("user:sb", "doc:s/x", "write", t_first)["allowed"] is True
    assert at("user:f0", "doc:f/0", "read", t_first)["allowed"] is False
    middle = at("user:sa", "doc:s/1", "read", shifted(t_last, -0.001))
    assert middle["allowed"] is True
    assert at("user:sb", "doc:s/x", "write", shifted(t_last, -0.001))["allowed"] is True
    assert at("user:f5199", "doc:f/5199", "read", t_filler_end)["allowed"] is True
    assert at("user:f0", "doc:f/0", "read", t_filler_end)["allowed"] is True
    after = at("user:sa", "doc:s/1", "read", t_last)
    assert after["allowed"] is False
    assert at("user:sb", "doc:s/x", "write", t_last)["allowed"] is False
    assert at("user:f4321", "doc:f/4321", "read", t_last)["allowed"] is True
    assert after["replayed_events"] < 5000, "the answer did not start from a snapshot"
