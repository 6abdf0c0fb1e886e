"""Grammar-valid fuzzing: every input the contract calls valid must be answered 2xx.

The OpenAPI document does not carry the identifier grammar of contract section 1, so
schemathesis mostly reaches the 422 paths. Here Hypothesis draws identifiers from the grammar
itself (odd but valid ones: `doc:.@/-`, 128-character ids, 16 segments, tenants like `0`),
times anywhere in the representable range with any whole-minute offset, writes them through
POST /v1/events and reads them back through every read endpoint. Valid input must never be
refused and never fail: the answer is 200/202, nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.helpers import (
    audit_check_path,
    audit_events_path,
    permissions_path,
    who_can_path,
)

pytestmark = pytest.mark.e2e

_ID_CHARS = "A-Za-z0-9._@-"
ids = st.one_of(
    st.from_regex(rf"[{_ID_CHARS}]{{1,8}}", fullmatch=True),
    st.from_regex(rf"[{_ID_CHARS}]{{128}}", fullmatch=True),
)
tenants = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{62}", fullmatch=True),
)
kinds = st.sampled_from(["user", "service", "group"])
principals = st.builds(lambda k, i: f"{k}:{i}", kinds, ids)
groups = st.builds(lambda i: f"group:{i}", ids)
types = st.from_regex(r"[a-z][a-z0-9_-]{0,31}", fullmatch=True)
paths = st.lists(ids, min_size=1, max_size=16).map("/".join)
resources = st.builds(lambda t, p: f"{t}:{p}", types, paths)
patterns = st.one_of(
    resources,
    st.builds(lambda r: f"{r}/*", resources),
    st.builds(lambda t: f"{t}:*", types),
)
actions = st.from_regex(r"[a-z][a-z0-9_.-]{0,63}", fullmatch=True)
permissions = st.one_of(actions, st.builds(lambda a: f"role:{a}", actions))

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@st.composite
def times(draw: st.DrawFn) -> str:
    """An RFC 3339 time in the representable range, in any whole-minute offset."""
    moment = draw(
        st.one_of(
            st.datetimes(
                min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None)
            ).map(lambda d: d.replace(tzinfo=UTC)),
            st.sampled_from([EARLIEST, LATEST, datetime.now(UTC)]),
        )
    )
    moment = min(moment, LATEST)
    offset = timezone(timedelta(minutes=draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))))
    try:
        local = moment.astimezone(offset)
    except OverflowError:
        local = moment
    text = local.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") and draw(st.booleans()) else text


@st.composite
def events(draw: st.DrawFn, tenant: str, pool: dict[str, list[str]]) -> dict[str, Any]:
    """One valid event of any type, naming identifiers from pool or fresh ones."""

    def pick(key: str, strategy: st.SearchStrategy[str]) -> str:
        return draw(st.one_of(st.sampled_from(pool[key]), strategy))

    kind = draw(
        st.sampled_from(
            ["grant", "revoke", "add_member", "remove_member", "define_role", "delete_role"]
        )
    )
    body: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=128)),
        "tenant": tenant,
        "type": kind,
        "actor": draw(principals),
        "occurred_at": draw(times()),
    }
    if draw(st.booleans()):
        body["reason"] = draw(st.text(max_size=1024))
    if kind in ("grant", "revoke"):
        body["principal"] = pick("principals", principals)
        body["resource"] = draw(st.one_of(st.sampled_from(pool["resources"]), patterns))
        body["permission"] = draw(
            st.one_of(st.sampled_from(pool["actions"]), st.just("role:r"), permissions)
        )
        if kind == "grant" and draw(st.booleans()):
            body["expires_at"] = draw(times())
    elif kind in ("add_member", "remove_member"):
        body["group"] = pick("groups", groups)
        body["member"] = pick("principals", principals)
    elif kind == "define_role":
        body["role"] = draw(st.one_of(st.just("r"), actions))
        body["actions"] = draw(
            st.lists(st.one_of(st.sampled_from(pool["actions"]), actions), min_size=1, max_size=5)
        )
    else:
        body["role"] = draw(st.one_of(st.just("r"), actions))
    return body


def seed_pool() -> dict[str, list[str]]:
    """Identifiers shared between writes and reads so reads find data."""
    return {
        "principals": ["user:u", "service:s", "group:g"],
        "groups": ["group:g", "group:h"],
        "resources": ["doc:a", "doc:a/b", "doc:a/*", "doc:*"],
        "actions": ["read", "write"],
    }


def assert_ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """Valid input: the expected 2xx, never a refusal or a failure."""
    assert response.status_code == status, (
        response.request.method,
        str(response.request.url)[:300],
        response.status_code,
        response.text[:500],
    )
    body: dict[str, Any] = response.json()
    return body


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_valid_writes_then_every_read_answers_2xx(operator_http: httpx.Client, tenant: str) -> None:
    """Grammar-valid events are accepted; every read over them is 200."""
    pool = seed_pool()

    @given(data=st.data())
    @FUZZ
    def run(data: st.DataObject) -> None:
        batch = data.draw(st.lists(events(tenant, pool), min_size=1, max_size=8))
        written = assert_ok(operator_http.post("/v1/events", json={"events": batch}), 202)
        assert written["accepted"] == len(batch)

        principal = data.draw(st.one_of(st.sampled_from(pool["principals"]), principals))
        resource = data.draw(st.one_of(st.sampled_from(["doc:a", "doc:a/b"]), resources))
        action = data.draw(st.one_of(st.sampled_from(pool["actions"]), actions))
        check = {
            "tenant": tenant,
            "principal": principal,
            "resource": resource,
            "action": action,
            "consistency": {"at_least": written["token"]},
        }
        answer = assert_ok(operator_http.post("/v1/check", json=check))
        assert answer["allowed"] is bool(answer["reasons"])

        items = data.draw(
            st.lists(
                st.fixed_dictionaries(
                    {"principal": principals, "resource": resources, "action": actions}
                ),
                min_size=1,
                max_size=20,
            )
        )
        batch_answer = assert_ok(
            operator_http.post("/v1/check/batch", json={"tenant": tenant, "checks": items})
        )
        assert len(batch_answer["results"]) == len(items)

        limit = data.draw(st.integers(1, 1000))
        for path, key, params in (
            (permissions_path(tenant, principal), "permissions", {}),
            (who_can_path(tenant, resource), "principals", {}),
            (who_can_path(tenant, resource), "principals", {"action": action}),
            (audit_events_path(tenant), "events", {}),
            (audit_events_path(tenant), "events", {"principal": principal}),
            (audit_events_path(tenant), "events", {"resource": resource}),
            (
                audit_events_path(tenant),
                "events",
                {"from": data.draw(times()), "to": data.draw(times())},
            ),
        ):
            page = assert_ok(operator_http.get(path, params={**params, "limit": limit}))
            assert len(page[key]) <= limit
            if page["next_cursor"]:
                assert_ok(
                    operator_http.get(
                        path, params={**params, "limit": limit, "cursor": page["next_cursor"]}
                    )
                )

        params = {
            "principal": principal,
            "resource": resource,
            "action": action,
            "at": data.draw(times()),
        }
        past = assert_ok(operator_http.get(audit_check_path(tenant), params=params))
        assert past["allowed"] is bool(past["reasons"])

    run()


def test_valid_reads_of_any_tenant_answer_200(operator_http: httpx.Client) -> None:
    """Reads naming grammar-edge tenants and identifiers (mostly empty tenants) are 200."""

    @given(
        tenant=tenants,
        principal=principals,
        resource=resources,
        action=actions,
        at=times(),
    )
    @FUZZ
    def run(tenant: str, principal: str, resource: str, action: str, at: str) -> None:
        check = {"tenant": tenant, "principal": principal, "resource": resource, "action": action}
        assert assert_ok(operator_http.post("/v1/check", json=check))["allowed"] is False
        assert_ok(operator_http.get(permissions_path(tenant, principal)))
        assert_ok(operator_http.get(who_can_path(tenant, resource), params={"action": action}))
        assert_ok(operator_http.get(audit_events_path(tenant), params={"principal": principal}))
        params = {"principal": principal, "resource": resource, "action": action, "at": at}
        assert_ok(operator_http.get(audit_check_path(tenant), params=params))

    run()
