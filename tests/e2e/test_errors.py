"""Every bad input answers the contract's error body with a fitting 4xx, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    add_member,
    all_pages,
    assert_error,
    audit_check_path,
    audit_events_path,
    define_role,
    event,
    grant,
    make_cursor,
    permissions_path,
    publish,
    sync,
    who_can_path,
)

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


def check_body(name: str, **override: Any) -> dict[str, Any]:
    """A valid check request of tenant name with some fields replaced."""
    body: dict[str, Any] = {
        "tenant": name,
        "principal": "user:alice",
        "resource": "doc:acme/spec",
        "action": "read",
    }
    body.update(override)
    return body


# --- invalid identifiers: 422 naming the field ------------------------------------------------

BAD_TENANTS = ["Acme", "-acme", "a" * 64, "ac me", "", "acme/x"]
BAD_PRINCIPALS = ["alice", "user:", "role:editor", "user:a b", "User:alice", "user:" + "a" * 129]
BAD_RESOURCES = [
    "doc",
    "Doc:x",
    "doc:",
    "doc:a//b",
    "doc:/a",
    "doc:a/",
    "doc:" + "/".join(["s"] * 17),
    "d" * 33 + ":x",
    "doc:a b",
]
BAD_ACTIONS = ["Read", "1read", "", "re ad", "a" * 65, "role:read"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("principal", v) for v in BAD_PRINCIPALS]
    + [("resource", v) for v in BAD_RESOURCES]
    + [("action", v) for v in BAD_ACTIONS],
)
def test_check_invalid_identifier_names_the_field(
    http: httpx.Client, tenant: str, field: str, value: str
) -> None:
    """POST /v1/check: each invalid identifier is a 422 naming that field."""
    response = http.post("/v1/check", json=check_body(tenant, **{field: value}))
    assert_error(response, 422, field)


@pytest.mark.parametrize("value", BAD_TENANTS)
def test_check_invalid_tenant_names_the_field(operator_http: httpx.Client, value: str) -> None:
    """An invalid tenant is a 422 naming it (an operator token may name any tenant)."""
    response = operator_http.post("/v1/check", json=check_body(value))
    assert_error(response, 422, "tenant")


@pytest.mark.parametrize(
    ("field", "value"),
    [("principal", BAD_PRINCIPALS[0]), ("resource", BAD_RESOURCES[3]), ("action", BAD_ACTIONS[0])],
)
def test_batch_invalid_identifier_names_the_item_field(
    http: httpx.Client, tenant: str, field: str, value: str
) -> None:
    """POST /v1/check/batch: the error names the index and field of the bad check."""
    good = {"principal": "user:a", "resource": "doc:x", "action": "read"}
    checks = [dict(good), dict(good), {**good, field: value}]
    response = http.post("/v1/check/batch", json={"tenant": tenant, "checks": checks})
    assert_error(response, 422, f"checks[2].{field}")


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("grant", "event_id", ""),
        ("grant", "event_id", "e" * 129),
        ("grant", "actor", "admin"),
        ("grant", "occurred_at", "yesterday"),
        ("grant", "occurred_at", "2026-01-01T00:00:00"),
        ("grant", "occurred_at", "2026-01-01"),
        ("grant", "occurred_at", "9999-12-31T23:59:59-01:00"),
        ("grant", "occurred_at", "0001-01-01T00:00:00+01:00"),
        ("grant", "reason", "r" * 1025),
        ("grant", "principal", "alice"),
        ("grant", "resource", "doc:a/*/b"),
        ("grant", "resource", "doc:**"),
        ("grant", "resource", "*"),
        ("grant", "permission", "role:"),
        ("grant", "permission", "Read"),
        ("grant", "expires_at", "tomorrow"),
        ("grant", "expires_at", "9999-12-31T23:59:59.999999Z"),
        ("grant", "expires_at", "9999-12-31T23:59:59-01:00"),
        ("revoke", "principal", "user:"),
        ("revoke", "resource", "doc"),
        ("revoke", "permission", "role:Bad"),
        ("add_member", "group", "user:bob"),
        ("add_member", "member", "bob"),
        ("remove_member", "group", "group:"),
        ("remove_member", "member", "team:x"),
        ("define_role", "role", "Editor"),
        ("define_role", "actions", []),
        ("define_role", "actions", ["read"] * 257),
        ("delete_role", "role", "role:editor"),
    ],
)
def test_event_invalid_field_names_the_field(
    http: httpx.Client, tenant: str, kind: str, field: str, value: Any
) -> None:
    """POST /v1/events: each invalid field of each event type is a 422 naming it."""
    valid = {
        "grant": grant(tenant, "user:a", "doc:x", "read"),
        "revoke": event(tenant, "revoke", principal="user:a", resource="doc:x", permission="read"),
        "add_member": add_member(tenant, "group:g", "user:a"),
        "remove_member": event(tenant, "remove_member", group="group:g", member="user:a"),
        "define_role": define_role(tenant, "editor", ["read"]),
        "delete_role": event(tenant, "delete_role", role="editor"),
    }[kind]
    bad = {**valid, field: value}
    response = http.post("/v1/events", json={"events": [valid, bad]})
    assert_error(response, 422, f"events[1].{field}")


def test_event_invalid_action_in_a_role_names_its_index(http: httpx.Client, tenant: str) -> None:
    """An invalid action inside define_role names the list index."""
    bad = define_role(tenant, "editor", ["read", "write", "Bad Action"])
    assert_error(http.post("/v1/events", json={"events": [bad]}), 422, "events[0].actions[2]")


@pytest.mark.parametrize("missing", ["event_id", "tenant", "type", "actor", "occurred_at"])
def test_event_missing_required_field_is_422(http: httpx.Client, tenant: str, missing: str) -> None:
    """Every common field is required."""
    bad = grant(tenant, "user:a", "doc:x", "read")
    del bad[missing]
    error = assert_error(http.post("/v1/events", json={"events": [bad]}), 422)
    assert missing in json.dumps(error["details"]) or missing == "type"


def test_event_unknown_type_is_422(http: httpx.Client, tenant: str) -> None:
    """A type outside the contract's list is refused."""
    bad = event(tenant, "frobnicate", principal="user:a")
    assert_error(http.post("/v1/events", json={"events": [bad]}), 422)


@pytest.mark.parametrize("resource", ["doc:*", "doc:a/*", "doc:a/b/*"])
def test_wildcard_resource_in_a_check_is_422(
    http: httpx.Client, tenant: str, resource: str
) -> None:
    """A check on a resource pattern is invalid input, in every endpoint that checks."""
    assert_error(
        http.post("/v1/check", json=check_body(tenant, resource=resource)), 422, "resource"
    )
    batch = {
        "tenant": tenant,
        "checks": [{"principal": "user:a", "resource": resource, "action": "read"}],
    }
    assert_error(http.post("/v1/check/batch", json=batch), 422, "checks[0].resource")
    params = {
        "principal": "user:a",
        "resource": resource,
        "action": "read",
        "at": "2026-01-01T00:00:00Z",
    }
    assert_error(http.get(audit_check_path(tenant), params=params), 422, "resource")
    assert_error(http.get(who_can_path(tenant, resource)), 422, "resource")


@pytest.mark.parametrize(
    ("path_of", "field"),
    [
        (lambda t: permissions_path(t, "alice"), "principal"),
        (lambda t: permissions_path(t, "user:a b"), "principal"),
        (lambda t: who_can_path(t, "Doc:x"), "resource"),
        (lambda t: who_can_path(t, "doc:a//b"), "resource"),
    ],
)
def test_invalid_identifier_in_a_path_names_it(
    http: httpx.Client, tenant: str, path_of: Any, field: str
) -> None:
    """Identifiers in the path are validated like identifiers in a body."""
    assert_error(http.get(path_of(tenant)), 422, field)


@pytest.mark.parametrize("bad_tenant", ["Acme", "-x", "a" * 64])
def test_invalid_tenant_in_a_path_names_it(operator_http: httpx.Client, bad_tenant: str) -> None:
    """An invalid tenant in a path is 422 naming tenant."""
    for path in (
        permissions_path(bad_tenant, "user:a"),
        who_can_path(bad_tenant, "doc:x"),
        audit_events_path(bad_tenant),
    ):
        assert_error(operator_http.get(path), 422, "tenant")
    params = {
        "principal": "user:a",
        "resource": "doc:x",
        "action": "read",
        "at": "2026-01-01T00:00:00Z",
    }
    assert_error(operator_http.get(audit_check_path(bad_tenant), params=params), 422, "tenant")


@pytest.mark.parametrize(
    ("param", "value"),
    [("principal", "alice"), ("resource", "doc"), ("action", "Read"), ("at", "never")],
)
def test_audit_check_invalid_query_names_it(
    http: httpx.Client, tenant: str, param: str, value: str
) -> None:
    """Every parameter of the audit check is validated, each error naming it."""
    params = {
        "principal": "user:a",
        "resource": "doc:x",
        "action": "read",
        "at": "2026-01-01T00:00:00Z",
    }
    params[param] = value
    assert_error(http.get(audit_check_path(tenant), params=params), 422, param)
    del params[param]
    assert_error(http.get(audit_check_path(tenant), params=params), 422, param)


@pytest.mark.parametrize(("param", "value"), [("principal", "group:"), ("resource", "doc:a/*/b")])
def test_audit_events_invalid_filter_names_it(
    http: httpx.Client, tenant: str, param: str, value: str
) -> None:
    """Audit filters are identifiers too."""
    assert_error(http.get(audit_events_path(tenant), params={param: value}), 422, param)


def test_who_can_invalid_action_names_it(http: httpx.Client, tenant: str) -> None:
    """?action= is validated."""
    response = http.get(who_can_path(tenant, "doc:x"), params={"action": "Read"})
    assert_error(response, 422, "action")


# --- sizes of batches and bodies ----------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 501])
def test_events_batch_outside_1_to_500_is_422(http: httpx.Client, tenant: str, count: int) -> None:
    """1-500 events per request."""
    events = [grant(tenant, f"user:u{i}", "doc:x", "read") for i in range(count)]
    assert_error(http.post("/v1/events", json={"events": events}), 422, "events")


@pytest.mark.parametrize("count", [0, 1001])
def test_check_batch_outside_1_to_1000_is_422(http: httpx.Client, tenant: str, count: int) -> None:
    """1-1000 checks per request."""
    checks = [
        {"principal": "user:a", "resource": f"doc:{i}", "action": "read"} for i in range(count)
    ]
    assert_error(
        http.post("/v1/check/batch", json={"tenant": tenant, "checks": checks}), 422, "checks"
    )


def test_events_of_two_tenants_are_refused_whole(operator_http: httpx.Client, tenant: str) -> None:
    """A request mixing tenants is 422 and nothing of it is recorded, in either tenant."""
    other = tenant + "-b"
    mixed = [grant(tenant, "user:a", "doc:x", "read"), grant(other, "user:a", "doc:x", "read")]
    assert_error(operator_http.post("/v1/events", json={"events": mixed}), 422, "events[].tenant")
    for name in (tenant, other):
        marker = grant(name, "user:marker", "doc:marker", "read")
        sync(operator_http, name, publish(operator_http, [marker]))
        logged, _ = all_pages(operator_http, audit_events_path(name), "events", {}, 100)
        assert [e["event"]["event_id"] for e in logged] == [marker["event_id"]]


def test_events_of_two_tenants_are_refused_for_a_tenant_token(
    http: httpx.Client, tenant: str
) -> None:
    """Even when one of the tenants is the caller's own, the request is refused (4xx)."""
    mixed = [grant(tenant, "user:a", "doc:x", "read"), grant("zz-other", "user:a", "doc:x", "read")]
    assert_error(http.post("/v1/events", json={"events": mixed}), (403, 422))


def big_check_body(tenant: str, size: int) -> bytes:
    """A JSON check body of exactly size bytes (padded inside the reason-free action)."""
    head = json.dumps(check_body(tenant, action="read"))[:-1] + ', "pad": "'
    tail = '"}'
    return (head + "x" * (size - len(head) - len(tail)) + tail).encode()


def test_body_over_4_mib_is_413(http: httpx.Client, tenant: str) -> None:
    """Content-Length over 4 MiB is refused with 413 and the error body."""
    body = big_check_body(tenant, 4 * MIB + 1)
    response = http.post("/v1/check", content=body, headers={"content-type": "application/json"})
    assert_error(response, 413)


def test_chunked_body_over_4_mib_is_413(http: httpx.Client, tenant: str) -> None:
    """Without Content-Length (chunked upload) the limit still holds."""
    body = big_check_body(tenant, 4 * MIB + 64 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = http.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413)


def test_body_of_exactly_4_mib_is_not_413(http: httpx.Client, tenant: str) -> None:
    """The limit is over 4 MiB: a body of exactly 4 MiB is read (and here refused as 422)."""
    body = big_check_body(tenant, 4 * MIB)
    assert len(body) == 4 * MIB
    response = http.post("/v1/check", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "pad")


@pytest.mark.parametrize("depth", [100, 1000, 20_000, 200_000])
def test_deeply_nested_json_is_4xx(http: httpx.Client, tenant: str, depth: int) -> None:
    """Nesting that could exhaust the parser's stack is a client error, never a 500."""
    nested = "[" * depth + "]" * depth
    for path, body in (
        ("/v1/events", '{"events": ' + nested + "}"),
        ("/v1/check", json.dumps(check_body(tenant))[:-1] + ', "consistency": ' + nested + "}"),
        ("/v1/check/batch", '{"tenant": "' + tenant + '", "checks": [' + nested + "]}"),
    ):
        response = http.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(response, (400, 413, 422))


# --- unknown fields, wrong types, non-JSON -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body_of", "field"),
    [
        ("/v1/check", lambda t: check_body(t, allowed=True), "allowed"),
        (
            "/v1/check",
            lambda t: check_body(t, consistency={"at_least": "x", "wait": 1}),
            "consistency.wait",
        ),
        (
            "/v1/check/batch",
            lambda t: {
                "tenant": t,
                "checks": [
                    {"principal": "user:a", "resource": "doc:x", "action": "read", "why": 1}
                ],
            },
            "checks[0].why",
        ),
        (
            "/v1/check/batch",
            lambda t: {
                "tenant": t,
                "checks": [{"principal": "user:a", "resource": "doc:x", "action": "read"}],
                "mode": "x",
            },
            "mode",
        ),
        (
            "/v1/events",
            lambda t: {"events": [grant(t, "user:a", "doc:x", "read")], "dry_run": True},
            "dry_run",
        ),
        (
            "/v1/events",
            lambda t: {"events": [grant(t, "user:a", "doc:x", "read", group="group:g")]},
            "events[0].group",
        ),
        (
            "/v1/events",
            lambda t: {"events": [add_member(t, "group:g", "user:a") | {"role": "x"}]},
            "events[0].role",
        ),
    ],
)
def test_unknown_field_is_422_naming_it(
    http: httpx.Client, tenant: str, path: str, body_of: Any, field: str
) -> None:
    """A typo is an error, not a silent default."""
    assert_error(http.post(path, json=body_of(tenant)), 422, field)


@pytest.mark.parametrize(
    ("path", "body_of", "field"),
    [
        ("/v1/check", lambda t: check_body(t, principal=5), "principal"),
        ("/v1/check", lambda t: check_body(t, tenant=["a"]), "tenant"),
        ("/v1/check", lambda t: check_body(t, action=None), "action"),
        ("/v1/check", lambda t: check_body(t, consistency="token"), "consistency"),
        ("/v1/check", lambda t: check_body(t, consistency={"at_least": 7}), "consistency.at_least"),
        ("/v1/check/batch", lambda t: {"tenant": t, "checks": {"principal": "user:a"}}, "checks"),
        ("/v1/check/batch", lambda t: {"tenant": t, "checks": ["user:a"]}, "checks[0]"),
        ("/v1/events", lambda t: {"events": "grant"}, "events"),
        (
            "/v1/events",
            lambda t: {
                "events": [grant(t, "user:a", "doc:x", "read") | {"expires_at": 1700000000}]
            },
            "events[0].expires_at",
        ),
        (
            "/v1/events",
            lambda t: {"events": [define_role(t, "r", ["read"]) | {"actions": "read"}]},
            "events[0].actions",
        ),
        (
            "/v1/events",
            lambda t: {"events": [grant(t, "user:a", "doc:x", "read") | {"event_id": 12}]},
            "events[0].event_id",
        ),
    ],
)
def test_wrong_type_is_422_naming_the_field(
    http: httpx.Client, tenant: str, path: str, body_of: Any, field: str
) -> None:
    """Wrong JSON types are refused field by field."""
    assert_error(http.post(path, json=body_of(tenant)), 422, field)


@pytest.mark.parametrize("path", ["/v1/check", "/v1/check/batch", "/v1/events"])
@pytest.mark.parametrize(
    "content",
    [b"not json", b"", b"{", b'{"tenant": }', b"\xff\xfe\x00", b"[1, 2]", b'"text"', b"null"],
)
def test_non_json_or_non_object_body_is_4xx(http: httpx.Client, path: str, content: bytes) -> None:
    """Bodies that are not a JSON object are 400 or 422 with the error body."""
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert_error(response, (400, 422))


def test_form_body_is_4xx(http: httpx.Client, tenant: str) -> None:
    """A form post is not JSON."""
    response = http.post("/v1/check", data={"tenant": tenant, "principal": "user:a"})
    assert_error(response, (400, 415, 422))


# --- paging, cursors and times ----------------------------------------------------------------


@pytest.fixture
def paged_tenant(http: httpx.Client, tenant: str) -> str:
    """A tenant with enough data that every listing has a second page at limit=1."""
    events = [grant(tenant, "user:a", f"doc:x/{i}", "read") for i in range(3)]
    events += [grant(tenant, f"user:w{i}", "doc:x/0", "read") for i in range(3)]
    sync(http, tenant, publish(http, events))
    return tenant


def listing_paths(tenant: str) -> list[str]:
    """Every endpoint that pages."""
    return [
        permissions_path(tenant, "user:a"),
        who_can_path(tenant, "doc:x/0"),
        audit_events_path(tenant),
    ]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5", ""])
def test_bad_limit_is_422(http: httpx.Client, paged_tenant: str, limit: str) -> None:
    """limit is 1-1000."""
    for path in listing_paths(paged_tenant):
        assert_error(http.get(path, params={"limit": limit}), 422, "limit")


def test_limit_bounds_are_accepted(http: httpx.Client, paged_tenant: str) -> None:
    """1 and 1000 are valid limits."""
    for path in listing_paths(paged_tenant):
        for limit in (1, 1000):
            response = http.get(path, params={"limit": limit})
            assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",  # base64 of "not json"
        make_cursor({"a": 1}),
        make_cursor(["other", "x", "y"]),
        make_cursor(["perm", "x"]),
        make_cursor(["audit", "x", "y"]),
        make_cursor(["audit", 1.5, None]),
        make_cursor(["audit", 10**30, 0]),
        make_cursor(["audit", 1, 2**63]),
        make_cursor(["perm", "\ud800", "x"]),
        make_cursor(["who", "\udfff", "read"]),
        make_cursor(["perm", None, None]),
        make_cursor(["who", 1, 2]),
    ],
)
def test_bad_cursor_is_400(http: httpx.Client, paged_tenant: str, cursor: str) -> None:
    """A cursor the endpoint did not issue is 400 (forged ones included), never a 500."""
    for path in listing_paths(paged_tenant):
        for params in ({"cursor": cursor}, {"cursor": cursor, "limit": "1"}):
            assert_error(http.get(path, params=params), 400, "cursor")
    response = http.get(
        audit_events_path(paged_tenant), params={"cursor": cursor, "principal": "user:a"}
    )
    assert_error(response, 400, "cursor")


def test_cursor_of_another_endpoint_is_400(http: httpx.Client, paged_tenant: str) -> None:
    """Cursors are not interchangeable between endpoints."""
    cursors = {}
    for path in listing_paths(paged_tenant):
        response = http.get(path, params={"limit": 1})
        assert response.status_code == 200
        cursor = response.json()["next_cursor"]
        assert cursor, path
        cursors[path] = cursor
    for path in cursors:
        for source, cursor in cursors.items():
            if source != path:
                assert_error(http.get(path, params={"cursor": cursor}), 400, "cursor")


def test_overlong_cursor_is_4xx(http: httpx.Client, paged_tenant: str) -> None:
    """A huge cursor is refused before anything else."""
    for path in listing_paths(paged_tenant):
        assert_error(http.get(path, params={"cursor": "A" * 5000}), (400, 422), "cursor")


BAD_TIMES = [
    "yesterday",
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01 00:00:00Z",
    "2026-13-01T00:00:00Z",
    "1700000000",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2026-01-01T25:00:00Z",
]


@pytest.mark.parametrize("value", BAD_TIMES)
def test_bad_times_are_422_naming_the_parameter(
    http: httpx.Client, paged_tenant: str, value: str
) -> None:
    """at, from and to are RFC 3339 times in the representable range."""
    params = {"principal": "user:a", "resource": "doc:x/0", "action": "read", "at": value}
    assert_error(http.get(audit_check_path(paged_tenant), params=params), 422, "at")
    for name in ("from", "to"):
        response = http.get(audit_events_path(paged_tenant), params={name: value})
        assert_error(response, 422, name)


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-01T00:00:00.123456789+05:30"]
)
def test_extreme_but_valid_times_are_answered(
    http: httpx.Client, paged_tenant: str, value: str
) -> None:
    """Times at the ends of the range are valid input."""
    params = {"principal": "user:a", "resource": "doc:x/0", "action": "read", "at": value}
    response = http.get(audit_check_path(paged_tenant), params=params)
    assert response.status_code == 200, response.text
    for name in ("from", "to"):
        response = http.get(audit_events_path(paged_tenant), params={name: value})
        assert response.status_code == 200, response.text


def test_far_future_expiry_is_answered(http: httpx.Client, tenant: str) -> None:
    """The latest representable expiry is stored and rendered by every read."""
    latest = "9999-12-31T23:59:59Z"
    token = publish(http, [grant(tenant, "user:far", "doc:far", "read", expires_at=latest)])
    body = check_body(
        tenant, principal="user:far", resource="doc:far", consistency={"at_least": token}
    )
    response = http.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["reasons"][0]["expires_at"].startswith("9999-12-31T23:59:59")
    listed = http.get(permissions_path(tenant, "user:far"))
    assert listed.status_code == 200, listed.text
    assert listed.json()["permissions"][0]["expires_at"].startswith("9999-12-31T23:59:59")
    assert http.get(who_can_path(tenant, "doc:far")).status_code == 200
    params = {"principal": "user:far", "resource": "doc:far", "action": "read", "at": latest}
    assert http.get(audit_check_path(tenant), params=params).json()["allowed"] is False


# --- routes and methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/nope", "/v2/check", "/v1/tenants/acme", "/v1/tenants/acme/audit", "/"]
)
def test_unknown_route_is_404_with_error_body(http: httpx.Client, path: str) -> None:
    """Unknown paths answer the contract's error body."""
    assert_error(http.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/check"),
        ("PUT", "/v1/events"),
        ("DELETE", "/v1/check/batch"),
        ("POST", "/healthz"),
    ],
)
def test_wrong_method_is_405_with_error_body(http: httpx.Client, method: str, path: str) -> None:
    """A known path with the wrong method is a 4xx with the error body."""
    assert_error(http.request(method, path), 405)
