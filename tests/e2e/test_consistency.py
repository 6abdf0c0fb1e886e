"""Read-your-writes through consistency tokens (contract section 4), over HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from permstore.core.consistency import LogPoint, decode_token, encode_token
from tests.e2e.helpers import (
    TokenFactory,
    add_member,
    assert_error,
    bearer,
    check,
    grant,
    permissions_path,
    publish,
    remove_member,
    revoke,
    sync,
    who_can_path,
)
from tests.support.stack import ManagedProcess, StackEnvironment, extra_api

pytestmark = pytest.mark.e2e

SHORT_BOUND = 0.7


def check_body(tenant: str, at_least: str) -> dict[str, Any]:
    """A check request asking for at least a token."""
    return {
        "tenant": tenant,
        "principal": "user:alice",
        "resource": "doc:ryw",
        "action": "read",
        "consistency": {"at_least": at_least},
    }


def far_future(tenant: str, token: str) -> str:
    """A token of the tenant naming a point far past anything written."""
    point = decode_token(tenant, token)
    return encode_token(tenant, LogPoint(point.partition, point.offset + 10**9))


def test_write_token_gives_a_view_that_includes_the_write(http: httpx.Client, tenant: str) -> None:
    """Each of many back-to-back writes is visible to the read that names its token."""
    for i in range(20):
        token = publish(http, [grant(tenant, "user:alice", f"doc:ryw/{i}", "read")])
        answer = check(http, tenant, "user:alice", f"doc:ryw/{i}", "read", at_least=token)
        assert answer["allowed"] is True, i
        reached = decode_token(tenant, answer["token"])
        assert reached.covers(decode_token(tenant, token))


def test_remembered_answers_never_outlive_a_change(http: httpx.Client, tenant: str) -> None:
    """The same check asked over and over (served from the API's view cache between changes)
    follows every grant, revoke and membership change: at once with the write's token, and
    without a token as soon as the view has applied it."""

    def ask(at_least: str | None = None) -> tuple[bool, bool]:
        single = check(http, tenant, "user:cc", "doc:cache", "read", at_least=at_least)
        batch = http.post(
            "/v1/check/batch",
            json={
                "tenant": tenant,
                "checks": [{"principal": "user:cc", "resource": "doc:cache", "action": "read"}],
            }
            | ({"consistency": {"at_least": at_least}} if at_least else {}),
        ).json()["results"][0]
        return bool(single["allowed"]), bool(batch["allowed"])

    changes = [
        ([grant(tenant, "user:cc", "doc:cache", "read")], True),
        ([revoke(tenant, "user:cc", "doc:cache", "read")], False),
        ([grant(tenant, "group:cg", "doc:cache", "read")], False),
        ([add_member(tenant, "group:cg", "user:cc")], True),
        ([remove_member(tenant, "group:cg", "user:cc")], False),
    ]
    assert ask() == (False, False)
    for _ in range(5):
        assert ask() == (False, False)
    for events, expected in changes:
        token = publish(http, events)
        assert ask(token) == (expected, expected), events
        sync(http, tenant, token)
        time.sleep(0.1)  # a token-less read may use a position up to 50 ms old
        for _ in range(5):
            assert ask() == (expected, expected), events


def test_batch_check_honours_at_least(http: httpx.Client, tenant: str) -> None:
    """The batch endpoint waits for the token too, and answers with the view's token."""
    events = [grant(tenant, f"user:b{i}", "doc:batch", "read") for i in range(200)]
    token = publish(http, events)
    response = http.post(
        "/v1/check/batch",
        json={
            "tenant": tenant,
            "checks": [
                {"principal": f"user:b{i}", "resource": "doc:batch", "action": "read"}
                for i in range(200)
            ],
            "consistency": {"at_least": token},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(r["allowed"] for r in body["results"])
    assert decode_token(tenant, body["token"]).covers(decode_token(tenant, token))


def test_every_read_answers_with_a_token_it_accepts_back(http: httpx.Client, tenant: str) -> None:
    """Tokens of check, list and who-can are valid at_least tokens of the same tenant."""
    token = publish(http, [grant(tenant, "user:alice", "doc:ryw", "read")])
    answer = check(http, tenant, "user:alice", "doc:ryw", "read", at_least=token)
    listed = http.get(permissions_path(tenant, "user:alice")).json()["token"]
    who = http.get(who_can_path(tenant, "doc:ryw")).json()["token"]
    for read_token in (answer["token"], listed, who):
        again = http.post("/v1/check", json=check_body(tenant, read_token))
        assert again.status_code == 200, again.text
        assert again.json()["allowed"] is True


def test_a_fresh_tenant_answers_with_a_token_too(http: httpx.Client, tenant: str) -> None:
    """Before any event, a read still names the (empty) view it used, usable as at_least."""
    answer = check(http, tenant, "user:alice", "doc:ryw", "read")
    assert answer["allowed"] is False
    again = http.post("/v1/check", json=check_body(tenant, answer["token"]))
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "ps1.",
        "ps1.!!!!",
        "ps1." + base64.urlsafe_b64encode(b"not:a:point").decode(),
        "ps1." + base64.urlsafe_b64encode(b"onlyone").decode(),
        "ps1." + base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        "ps1." + "A" * 200,
        "x" * 129,
        "",
    ],
)
def test_malformed_token_is_400_or_422(http: httpx.Client, tenant: str, bad: str) -> None:
    """A token this service did not issue is refused with the error body."""
    for path, body in (
        ("/v1/check", check_body(tenant, bad)),
        (
            "/v1/check/batch",
            {
                "tenant": tenant,
                "checks": [{"principal": "user:a", "resource": "doc:x", "action": "read"}],
                "consistency": {"at_least": bad},
            },
        ),
    ):
        error = assert_error(http.post(path, json=body), (400, 422))
        assert "at_least" in str(error["details"]) or "token" in error["message"]


def test_token_of_another_tenant_is_refused(
    http: httpx.Client, tenant: str, api_url: str, issue_token: TokenFactory
) -> None:
    """A token names one tenant's log; presenting it for another tenant is an error."""
    other = tenant + "-other"
    with httpx.Client(base_url=api_url, headers=bearer(issue_token(other)), timeout=30) as client:
        other_token = publish(client, [grant(other, "user:alice", "doc:ryw", "read")])
    response = http.post("/v1/check", json=check_body(tenant, other_token))
    error = assert_error(response, (400, 422))
    assert "tenant" in error["message"]


def test_unreached_token_waits_for_the_default_bound_then_503(
    http: httpx.Client, tenant: str
) -> None:
    """The session API uses the default bound of 5 s; past it, 503 naming the point reached."""
    token = publish(http, [grant(tenant, "user:alice", "doc:ryw", "read")])
    check(http, tenant, "user:alice", "doc:ryw", "read", at_least=token)
    started = time.monotonic()
    response = http.post("/v1/check", json=check_body(tenant, far_future(tenant, token)))
    elapsed = time.monotonic() - started
    error = assert_error(response, 503)
    assert 4.9 <= elapsed < 9, elapsed
    assert error["code"] == "consistency_timeout"
    assert "5 s" in error["message"]
    reached = error["details"]["reached"]
    assert decode_token(tenant, reached).covers(decode_token(tenant, token))
    assert response.headers.get("retry-after")


@pytest.fixture(scope="module")
def short_bound_api(test_env: StackEnvironment, processor_process: ManagedProcess) -> Iterator[str]:
    """A second API process whose consistency bound is PERMSTORE_CONSISTENCY_WAIT_SECONDS."""
    with extra_api(
        test_env.env, "api-short-bound", PERMSTORE_CONSISTENCY_WAIT_SECONDS=str(SHORT_BOUND)
    ) as url:
        yield url


def test_configured_bound_is_honoured(
    short_bound_api: str, tenant: str, issue_token: TokenFactory
) -> None:
    """With a bound of 0.7 s the 503 comes after about 0.7 s and says so."""
    with httpx.Client(
        base_url=short_bound_api, headers=bearer(issue_token(tenant)), timeout=30
    ) as client:
        token = publish(client, [grant(tenant, "user:alice", "doc:ryw", "read")])
        assert check(client, tenant, "user:alice", "doc:ryw", "read", token)["allowed"] is True
        for path, body in (
            ("/v1/check", check_body(tenant, far_future(tenant, token))),
            (
                "/v1/check/batch",
                {
                    "tenant": tenant,
                    "checks": [{"principal": "user:a", "resource": "doc:x", "action": "read"}],
                    "consistency": {"at_least": far_future(tenant, token)},
                },
            ),
        ):
            started = time.monotonic()
            response = client.post(path, json=body)
            elapsed = time.monotonic() - started
            error = assert_error(response, 503)
            assert SHORT_BOUND - 0.05 <= elapsed < SHORT_BOUND + 3, elapsed
            assert error["code"] == "consistency_timeout"
            assert f"{SHORT_BOUND:g} s" in error["message"]
            reached = decode_token(tenant, error["details"]["reached"])
            assert reached.covers(decode_token(tenant, token))
