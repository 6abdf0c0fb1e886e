"""The check fast lane answers exactly as the FastAPI route does, for good and bad calls alike.

Two API processes share the views: the session's (fast lane on) and one with it off. Every call
goes to both; status, body and headers must match, and the lane's own counter must show that it
answered the ordinary calls and handed the others to the route.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import add_member, bearer, define_role, grant, publish, sync
from tests.support.stack import ManagedProcess, StackEnvironment, extra_api

pytestmark = pytest.mark.e2e

# Per-call headers that legitimately differ between two processes.
VOLATILE_HEADERS = {"date", "x-request-id"}
PRINCIPALS = ["user:ann", "user:bob", "group:team", "service:ci", "user:*", "bob", ""]
RESOURCES = ["doc:eng/spec", "doc:eng/*", "doc:hr/pay", "folder:eng", "doc", ""]
ACTIONS = ["read", "write", "deploy", "READ", "", "a" * 300]


@pytest.fixture(scope="module")
def route_only_api(test_env: StackEnvironment, processor_process: ManagedProcess) -> Iterator[str]:
    """An API process with the fast lane off: every check goes through the FastAPI route."""
    with extra_api(test_env.env, "api-route-only", PERMSTORE_CHECK_FAST_LANE="false") as url:
        yield url


@pytest.fixture(scope="module")
def lane_tenant(api_url: str, issue_token: Callable[..., str]) -> Iterator[tuple[str, str]]:
    """A tenant with direct, wildcard, role and nested-group grants; yields (tenant, token)."""
    tenant = f"tlane{uuid.uuid4().hex[:10]}"
    with httpx.Client(
        base_url=api_url, headers=bearer(issue_token(tenant, "check,write")), timeout=30
    ) as http:
        token = publish(
            http,
            [
                define_role(tenant, "editor", ["read", "write"]),
                grant(tenant, "user:ann", "doc:eng/spec", "read"),
                grant(tenant, "group:org", "doc:eng/*", "role:editor"),
                add_member(tenant, "group:org", "group:team"),
                add_member(tenant, "group:team", "user:bob"),
                grant(tenant, "user:zed", "doc:hr/*", "read"),
            ],
        )
        sync(http, tenant, token)
        yield tenant, token


def metric_samples(api_url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of each sample of one metric of the (single-worker) API."""
    text = httpx.get(f"{api_url}/metrics").text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def lane_counts(api_url: str) -> dict[str, float]:
    """The fast lane's answered and routed counters."""
    counts = {"answered": 0.0, "routed": 0.0}
    for labels, value in metric_samples(api_url, "permstore_check_fast_lane_total"):
        counts[labels["outcome"]] = value
    return counts


def same_answer(
    fast_url: str, route_url: str, path: str, content: bytes, headers: dict[str, str]
) -> int:
    """POST to both APIs, assert identical answers, return the status."""
    answers = [
        httpx.post(f"{url}{path}", content=content, headers=headers, timeout=30)
        for url in (fast_url, route_url)
    ]
    fast, route = answers
    assert fast.status_code == route.status_code, (path, content, fast.text, route.text)
    assert fast.content == route.content, (path, content, fast.text, route.text)
    fast_headers = {k: v for k, v in fast.headers.items() if k not in VOLATILE_HEADERS}
    route_headers = {k: v for k, v in route.headers.items() if k not in VOLATILE_HEADERS}
    assert fast_headers == route_headers, (path, content)
    return fast.status_code


def test_catalogue_of_calls_matches_the_route(
    api_url: str,
    route_only_api: str,
    lane_tenant: tuple[str, str],
    issue_token: Callable[..., str],
) -> None:
    """Allowed, denied, chained and batched answers, and each kind of refusal, match."""
    tenant, token = lane_tenant
    check_token = issue_token(tenant, "check")
    json_headers = {"content-type": "application/json", **bearer(check_token)}

    def body(**fields: Any) -> bytes:
        base = {"tenant": tenant, "principal": "user:bob", "resource": "doc:eng/spec"}
        return json.dumps({**base, "action": "write", **fields}).encode()

    ordinary = [
        ("/v1/check", body()),
        ("/v1/check", body(principal="user:ann", action="read")),
        ("/v1/check", body(principal="user:zed", resource="doc:hr/pay", action="read")),
        ("/v1/check", body(principal="user:zed")),
        ("/v1/check", body(consistency={"at_least": token})),
        # Refused by the answer itself, which the lane shares with the route.
        ("/v1/check", body(consistency={"at_least": "ps1.bogus"})),
        ("/v1/check", body(tenant="someone-else")),
        (
            "/v1/check/batch",
            json.dumps(
                {
                    "tenant": tenant,
                    "checks": [
                        {"principal": p, "resource": "doc:eng/spec", "action": a}
                        for p in ("user:ann", "user:bob", "group:team", "user:zed")
                        for a in ("read", "write")
                    ],
                    "consistency": {"at_least": token},
                }
            ).encode(),
        ),
    ]
    refused = [
        ("/v1/check", b"{not json", json_headers),
        ("/v1/check", body(action="READ"), json_headers),
        ("/v1/check", body(resource="doc:eng/*"), json_headers),
        ("/v1/check", body(extra=1), json_headers),
        ("/v1/check", body(), {"content-type": "application/json"}),
        ("/v1/check", body(), {"content-type": "application/json", **bearer("garbage")}),
        (
            "/v1/check",
            body(),
            {"content-type": "application/json", **bearer(issue_token(tenant, "write"))},
        ),
        ("/v1/check", body(), {"content-type": "text/plain", **bearer(check_token)}),
        ("/v1/check/batch", json.dumps({"tenant": tenant, "checks": []}).encode(), json_headers),
    ]
    before = lane_counts(api_url)
    statuses = [same_answer(api_url, route_only_api, p, c, json_headers) for p, c in ordinary]
    statuses += [same_answer(api_url, route_only_api, p, c, h) for p, c, h in refused]
    after = lane_counts(api_url)

    assert statuses[: len(ordinary)] == [200] * 5 + [400, 403, 200]
    assert statuses[len(ordinary) :] == [422, 422, 422, 422, 401, 401, 403, 422, 422]
    assert after["answered"] - before["answered"] == len(ordinary)
    # The text/plain call never reaches the lane's decision: it is not a JSON call.
    assert after["routed"] - before["routed"] == len(refused) - 1
    assert lane_counts(route_only_api) == {"answered": 0.0, "routed": 0.0}
    # Laned answers keep their route template in the request metrics.
    answered_routes = {
        labels["route"]
        for labels, _ in metric_samples(api_url, "permstore_http_requests_total")
        if labels["status"] == "200"
    }
    assert {"/v1/check", "/v1/check/batch"} <= answered_routes
    assert "unmatched" not in answered_routes


def json_values() -> st.SearchStrategy[Any]:
    """Field values: mostly plausible identifiers, sometimes the wrong JSON type."""
    return st.one_of(
        st.sampled_from(PRINCIPALS + RESOURCES + ACTIONS),
        st.integers(),
        st.none(),
        st.lists(st.text(max_size=3), max_size=2),
    )


@st.composite
def check_bodies(draw: st.DrawFn, tenant: str) -> bytes:
    """A check body near the valid shape: fields drawn, dropped, renamed or added."""
    fields: dict[str, Any] = {
        "tenant": draw(st.sampled_from([tenant, tenant, "other"])),
        "principal": draw(st.sampled_from(PRINCIPALS)),
        "resource": draw(st.sampled_from(RESOURCES)),
        "action": draw(st.sampled_from(ACTIONS)),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del fields[name]
        else:
            fields[name] = draw(json_values())
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(["extra", "consistency"]))] = draw(json_values())
    return json.dumps(fields).encode()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_generated_checks_match_the_route(
    api_url: str,
    route_only_api: str,
    lane_tenant: tuple[str, str],
    issue_token: Callable[..., str],
    data: st.DataObject,
) -> None:
    """Any single or batch body, valid or not, gets the route's exact answer."""
    tenant, _ = lane_tenant
    headers = {"content-type": "application/json", **bearer(issue_token(tenant, "check"))}
    single = data.draw(check_bodies(tenant))
    same_answer(api_url, route_only_api, "/v1/check", single, headers)
    items = data.draw(st.lists(check_bodies(tenant), min_size=1, max_size=4))
    checks = [{k: v for k, v in json.loads(b).items() if k != "tenant"} for b in items]
    batch = json.dumps({"tenant": tenant, "checks": checks}).encode()
    same_answer(api_url, route_only_api, "/v1/check/batch", batch, headers)
