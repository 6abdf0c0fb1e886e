"""permstore_client's change stream (contract section 6) against a scripted changes endpoint:
typed pages, following `next` exactly once, long polls, and reconnects after transient errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from permstore_client import (
    NO_RETRIES,
    AsyncPermstoreClient,
    Change,
    ChangedPermission,
    ChangesPage,
    ForbiddenError,
    InvalidTokenError,
    PermstoreClient,
    RetryPolicy,
    TransportTimeoutError,
)

FAST = RetryPolicy(attempts=2, backoff=0.001, max_delay=5.0)
Fault = Callable[[httpx.Request], httpx.Response]


def change(n: int) -> dict[str, Any]:
    """The n-th change of tenant acme, as the endpoint answers it."""
    return {
        "tenant": "acme",
        "principal": f"user:u{n}",
        "position": f"pos-{n}",
        "recorded_at": f"2026-12-02T10:00:{n:02d}Z",
        "cause": f"evt-{n}",
        "added": [{"resource": f"doc:acme/{n}", "action": "read", "expires_at": None}],
        "removed": [],
    }


@dataclass
class ChangesEndpoint:
    """GET /v1/tenants/acme/changes over a growing log; `next` tokens differ from positions.

    Omitting `after` starts at `start`. faults are answered, one per request, before the log is.
    """

    log: list[dict[str, Any]] = field(default_factory=lambda: [change(n) for n in range(1, 8)])
    start: int = 0
    faults: list[Fault | None] = field(default_factory=list)
    arrivals: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == "/v1/tenants/acme/changes"
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return fault(request)
        after = request.url.params.get("after")
        begin = self.start if after is None else int(after.removeprefix("next-"))
        limit = int(request.url.params.get("limit", "100"))
        page = self.log[begin : begin + limit]
        if not page and self.arrivals:
            # a change arriving while the long poll waits ends the wait (answered next time)
            self.log.append(self.arrivals.pop(0))
        return httpx.Response(200, json={"changes": page, "next": f"next-{begin + len(page)}"})

    def afters(self) -> list[str | None]:
        """The `after` of every request, in order."""
        return [r.url.params.get("after") for r in self.requests]


def unavailable(retry_after: str | None = None) -> Fault:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    body = {"error": {"code": "unavailable", "message": "store down", "details": None}}
    return lambda request: httpx.Response(503, json=body, headers=headers)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def client(endpoint: ChangesEndpoint, retry: RetryPolicy = FAST) -> PermstoreClient:
    return PermstoreClient(
        "http://p", "t", tenant="acme", retry=retry, transport=httpx.MockTransport(endpoint)
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep of the sync client, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("permstore_client.client.time.sleep", slept.append)
    return slept


def test_a_page_is_typed_and_the_query_is_the_contracts() -> None:
    endpoint = ChangesEndpoint()
    with client(endpoint) as c:
        page = c.changes("acme", after="next-2", limit=2, wait=5)
    assert isinstance(page, ChangesPage) and page.next == "next-4"
    assert [type(x) for x in page.changes] == [Change, Change]
    assert page.changes[0].principal == "user:u3" and page.changes[0].cause == "evt-3"
    assert page.changes[0].added == [ChangedPermission(resource="doc:acme/3", action="read")]
    assert dict(endpoint.requests[0].url.params) == {"after": "next-2", "limit": "2", "wait": "5"}


def test_the_tenant_defaults_to_the_clients_and_unset_options_are_not_sent() -> None:
    endpoint = ChangesEndpoint()
    with client(endpoint) as c:
        assert len(c.changes().changes) == 7
    assert dict(endpoint.requests[0].url.params) == {}


def test_a_long_poll_stretches_the_read_timeout_by_its_wait() -> None:
    endpoint = ChangesEndpoint()
    with PermstoreClient(
        "http://p", "t", tenant="acme", timeout=10.0, transport=httpx.MockTransport(endpoint)
    ) as c:
        c.changes(wait=30)
        c.changes(wait=2.5)
        c.changes()
    reads = [r.extensions["timeout"]["read"] for r in endpoint.requests]
    assert reads == [40.0, 12.5, 10.0]
    assert [r.url.params.get("wait") for r in endpoint.requests] == ["30", "2.5", None]


def test_following_yields_every_change_once_in_order_along_next() -> None:
    endpoint = ChangesEndpoint()
    with client(endpoint) as c:
        got = list(itertools.islice(c.follow_changes("acme", limit=3), 7))
    assert [x.position for x in got] == [f"pos-{n}" for n in range(1, 8)]
    assert endpoint.afters() == [None, "next-3", "next-6"]
    assert {r.url.params["wait"] for r in endpoint.requests} == {"30"}


def test_following_waits_through_empty_pages_for_new_changes() -> None:
    endpoint = ChangesEndpoint(start=7, arrivals=[change(8), change(9)])
    with client(endpoint) as c:
        got = list(itertools.islice(c.follow_changes(after="next-7", wait=1), 2))
    assert [x.cause for x in got] == ["evt-8", "evt-9"]
    assert endpoint.afters() == ["next-7", "next-7", "next-8", "next-8"]


def test_following_resumes_from_the_last_token_after_a_503(sleeps: list[float]) -> None:
    # NO_RETRIES: the 503 reaches the follower itself, which reconnects
    endpoint = ChangesEndpoint(faults=[None, unavailable(), None])
    with client(endpoint, NO_RETRIES) as c:
        got = list(itertools.islice(c.follow_changes(limit=4), 7))
    assert [x.position for x in got] == [f"pos-{n}" for n in range(1, 8)]
    assert endpoint.afters() == [None, "next-4", "next-4"]
    assert len(sleeps) == 1


def test_following_outlives_more_failures_than_the_retry_policy_allows(
    sleeps: list[float],
) -> None:
    faults: list[Fault | None] = [unavailable(), refused, unavailable(), refused, unavailable()]
    endpoint = ChangesEndpoint(faults=faults)
    with client(endpoint) as c:
        got = list(itertools.islice(c.follow_changes(after="next-5"), 2))
    assert [x.cause for x in got] == ["evt-6", "evt-7"]
    assert endpoint.afters() == ["next-5"] * 6
    # two attempts per call (the policy), and the follower's backoff between calls grows
    assert len(sleeps) == 5
    reconnects = sleeps[1::2]
    assert reconnects == sorted(reconnects)


def test_following_honours_retry_after(sleeps: list[float]) -> None:
    endpoint = ChangesEndpoint(faults=[unavailable("2"), unavailable("60")])
    with client(endpoint, RetryPolicy(attempts=1, max_delay=5.0)) as c:
        first = next(iter(c.follow_changes(after="next-0")))
    assert first.cause == "evt-1"
    assert sleeps == [2.0, 5.0]  # the second Retry-After is capped at the policy's max_delay


def test_a_retry_after_inside_one_call_is_honoured_before_the_follower_sees_it(
    sleeps: list[float],
) -> None:
    endpoint = ChangesEndpoint(faults=[unavailable("1.5")])
    with client(endpoint) as c:
        assert c.changes(after="next-6").changes[0].cause == "evt-7"
    assert sleeps == [1.5]


def test_an_error_that_is_not_transient_ends_the_follow(sleeps: list[float]) -> None:
    body = {"error": {"code": "forbidden", "message": "other tenant", "details": None}}
    endpoint = ChangesEndpoint(faults=[lambda request: httpx.Response(403, json=body)])
    with client(endpoint) as c, pytest.raises(ForbiddenError):
        next(iter(c.follow_changes()))
    assert sleeps == []


def test_a_timeout_is_a_typed_transport_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    endpoint = ChangesEndpoint(faults=[slow])
    with client(endpoint, NO_RETRIES) as c, pytest.raises(TransportTimeoutError) as raised:
        c.changes()
    assert raised.value.status == 0


# --------------------------------------------------------------------------- async


def async_client(endpoint: ChangesEndpoint, retry: RetryPolicy = FAST) -> AsyncPermstoreClient:
    return AsyncPermstoreClient(
        "http://p", "t", tenant="acme", retry=retry, transport=httpx.MockTransport(endpoint)
    )


@pytest.fixture
def async_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every asyncio.sleep of the async client, recorded and replaced by a bare yield."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("permstore_client.client.asyncio.sleep", record)
    return slept


async def test_async_page_is_typed() -> None:
    endpoint = ChangesEndpoint()
    async with async_client(endpoint) as c:
        page = await c.changes("acme", "next-5", 1, 3)
    assert [x.cause for x in page.changes] == ["evt-6"] and page.next == "next-6"
    assert dict(endpoint.requests[0].url.params) == {"after": "next-5", "limit": "1", "wait": "3"}
    assert endpoint.requests[0].extensions["timeout"]["read"] == 13.0


async def test_async_following_is_exactly_once_through_a_503_and_retry_after(
    async_sleeps: list[float],
) -> None:
    endpoint = ChangesEndpoint(faults=[None, unavailable("0.25"), refused, None])
    got: list[Change] = []
    async with async_client(endpoint, NO_RETRIES) as c:
        async for item in c.follow_changes(limit=3):
            got.append(item)
            if len(got) == 7:
                break
    assert [x.position for x in got] == [f"pos-{n}" for n in range(1, 8)]
    assert endpoint.afters() == [None, "next-3", "next-3", "next-3", "next-6"]
    assert async_sleeps[0] == 0.25 and len(async_sleeps) == 2


async def test_async_following_stops_on_an_error_that_is_not_transient() -> None:
    body = {"error": {"code": "invalid_token", "message": "not ours", "details": None}}
    endpoint = ChangesEndpoint(faults=[lambda request: httpx.Response(400, json=body)])
    async with async_client(endpoint) as c:
        with pytest.raises(InvalidTokenError):
            await anext(c.follow_changes(after="garbage"))
    assert len(endpoint.requests) == 1
