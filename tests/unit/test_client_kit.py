"""permstore_client itself: retries, tokens, errors, the async client, guards, cache, servers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from permstore_client import (
    NO_RETRIES,
    ConsistencyTimeoutError,
    DecisionCache,
    ForbiddenError,
    Guard,
    PermissionDeniedError,
    PermstoreClient,
    RateLimitedError,
    RetryPolicy,
    UnavailableError,
    guarded,
    require,
)
from permstore_client.testing import (
    InMemoryPermstore,
    PermstoreASGI,
    fake_async_client,
    fake_client,
    mock_transport,
    serve_in_thread,
)

FAST = RetryPolicy(attempts=3, backoff=0.001, max_delay=0.01)


def scripted(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.MockTransport(handle)


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": code, "details": None}}
    return httpx.Response(status, json=body, headers=headers)


OK_CHECK = httpx.Response(200, json={"allowed": True, "reasons": [], "token": "ps1.x"})


def test_retries_503_and_429_then_answers() -> None:
    seen: list[httpx.Request] = []
    answers = [error(503, "unavailable"), error(429, "rate_limited"), OK_CHECK]
    with PermstoreClient(
        "http://p", "t", tenant="a", retry=FAST, transport=scripted(answers, seen)
    ) as c:
        assert c.check("user:a", "doc:a", "read").allowed
    assert len(seen) == 3


def test_gives_up_after_the_last_attempt_with_the_typed_error() -> None:
    seen: list[httpx.Request] = []
    answers = [error(429, "rate_limited")] * 3
    with (
        PermstoreClient(
            "http://p", "t", tenant="a", retry=FAST, transport=scripted(answers, seen)
        ) as c,
        pytest.raises(RateLimitedError) as raised,
    ):
        c.check("user:a", "doc:a", "read")
    assert len(seen) == 3 and raised.value.status == 429


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(attempts=2, backoff=0.001, max_delay=2.0)
    assert policy.delay(0, 1.5) == 1.5
    assert policy.delay(0, 60.0) == 2.0
    assert 0.0005 <= policy.delay(0, None) <= 0.001
    seen: list[httpx.Request] = []
    answers = [
        error(503, "consistency_timeout", {"Retry-After": "0"}),
        error(503, "consistency_timeout"),
    ]
    with (
        PermstoreClient(
            "http://p", "t", tenant="a", retry=policy, transport=scripted(answers, seen)
        ) as c,
        pytest.raises(ConsistencyTimeoutError) as raised,
    ):
        c.check("user:a", "doc:a", "read")
    assert isinstance(raised.value, UnavailableError) and len(seen) == 2


def test_other_errors_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    with (
        PermstoreClient(
            "http://p",
            "t",
            tenant="a",
            retry=FAST,
            transport=scripted([error(403, "forbidden")], seen),
        ) as c,
        pytest.raises(ForbiddenError),
    ):
        c.check("user:a", "doc:a", "read")
    assert len(seen) == 1


def test_write_token_is_carried_to_the_next_read_unless_opted_out() -> None:
    store = InMemoryPermstore()
    bodies: list[dict[str, object]] = []
    inner = mock_transport(store)

    def spy(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/check":
            bodies.append(json.loads(request.content))
        response = inner.handle_request(request)
        response.read()
        return response

    with PermstoreClient(
        "http://p", "t", tenant="a", actor="user:x", transport=httpx.MockTransport(spy)
    ) as c:
        c.check("user:a", "doc:a", "read")
        written = c.grant("user:a", "doc:a", "read")
        c.check("user:a", "doc:a", "read")
        c.check("user:a", "doc:a", "read", read_your_writes=False)
    assert "consistency" not in bodies[0]
    assert bodies[1]["consistency"] == {"at_least": written.token}
    assert "consistency" not in bodies[2]
    with PermstoreClient(
        "http://p", "t", tenant="a", read_your_writes=False, transport=httpx.MockTransport(spy)
    ) as c:
        c.tokens.remember("a", written.token)
        c.check("user:a", "doc:a", "read")
    assert "consistency" not in bodies[3]


async def test_async_client_reads_its_writes() -> None:
    async with fake_async_client(InMemoryPermstore(), tenant="acme") as client:
        await client.add_member("group:g", "user:u")
        await client.grant("group:g", "doc:*", "read")
        assert (await client.check("user:u", "doc:z", "read")).allowed
        assert [p.resource async for p in client.permissions("user:u")] == ["doc:*"]


def test_asgi_app_answers_the_contract_over_asgi_transport() -> None:
    async def run() -> None:
        app = PermstoreASGI()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
            auth = {"Authorization": "Bearer x"}
            event = {
                "event_id": "e",
                "tenant": "a",
                "type": "grant",
                "actor": "user:x",
                "occurred_at": "2026-01-01T00:00:00Z",
                "principal": "user:u",
                "resource": "doc:a/b",
                "permission": "read",
            }
            posted = await http.post("/v1/events", json={"events": [event]}, headers=auth)
            assert posted.status_code == 202
            listed = await http.get("/v1/tenants/a/resources/doc%3Aa%2Fb/principals", headers=auth)
            assert [p["principal"] for p in listed.json()["principals"]] == ["user:u"]
            assert (await http.post("/v1/check", json={})).status_code == 401

    import asyncio

    asyncio.run(run())


def test_dev_server_serves_on_a_real_port() -> None:
    server, url = serve_in_thread()
    try:
        with PermstoreClient(url, "any", tenant="dev", actor="user:me") as client:
            client.grant("user:me", "doc:x", "read")
            assert client.check("user:me", "doc:x", "read").allowed
    finally:
        server.shutdown()
        server.server_close()


def test_decision_cache_is_bounded_and_short_lived() -> None:
    now = [0.0]
    cache = DecisionCache(ttl=1.0, max_entries=2, clock=lambda: now[0])
    cache.put(("t", "p", "r1", "a"), True)
    cache.put(("t", "p", "r2", "a"), False)
    cache.put(("t", "p", "r3", "a"), True)
    assert len(cache) == 2 and cache.get(("t", "p", "r1", "a")) is None
    assert cache.get(("t", "p", "r2", "a")) is False
    now[0] = 1.0
    assert cache.get(("t", "p", "r3", "a")) is None


@pytest.fixture
def guarded_app() -> Iterator[tuple[TestClient, PermstoreClient]]:
    store = InMemoryPermstore()

    def current_user(x_user: str = Header()) -> str:
        return f"user:{x_user}"

    app = FastAPI()
    app.state.permstore = Guard(fake_async_client(store, tenant="acme"), "acme")

    def doc_of(request: Request) -> str:
        return f"doc:{request.path_params['doc']}"

    @app.get("/docs/{doc}")
    async def read(
        doc: str, user: str = Depends(require("read", resource=doc_of, principal=current_user))
    ) -> dict[str, str]:
        return {"doc": doc, "user": user}

    with TestClient(app) as http, fake_client(store, tenant="acme") as admin:
        yield http, admin


def test_guard_allows_and_denies_with_what_was_asked(
    guarded_app: tuple[TestClient, PermstoreClient],
) -> None:
    http, admin = guarded_app
    denied = http.get("/docs/spec", headers={"X-User": "alice"})
    assert denied.status_code == 403
    assert denied.json()["detail"] == {
        "code": "permission_denied",
        "message": "user:alice may not read doc:spec",
        "tenant": "acme",
        "principal": "user:alice",
        "resource": "doc:spec",
        "action": "read",
        "reasons": [],
    }
    admin.grant("user:alice", "doc:spec", "read")
    assert http.get("/docs/spec", headers={"X-User": "alice"}).json() == {
        "doc": "spec",
        "user": "user:alice",
    }


def test_decorator_guards_plain_functions_and_caches_when_asked() -> None:
    store = InMemoryPermstore()
    cache = DecisionCache(ttl=60)
    with fake_client(store, tenant="acme") as client:

        @guarded(
            client,
            "acme",
            "delete",
            resource=lambda user, doc: doc,
            principal=lambda user, doc: user,
            cache=cache,
        )
        def delete(user: str, doc: str) -> str:
            return f"deleted {doc}"

        with pytest.raises(PermissionDeniedError):
            delete("user:bob", "doc:1")
        client.grant("user:bob", "doc:1", "delete")
        # the cached denial is the documented staleness; without the cache it is allowed
        with pytest.raises(PermissionDeniedError):
            delete("user:bob", "doc:1")
        cache.clear()
        assert delete("user:bob", "doc:1") == "deleted doc:1"


def test_no_retries_policy_makes_one_attempt() -> None:
    assert NO_RETRIES.attempts == 1


def test_the_permstore_facade_re_exports_the_kit() -> None:
    import permstore_client

    import permstore

    assert permstore.PermstoreClient is permstore_client.PermstoreClient
    assert permstore.AsyncPermstoreClient is permstore_client.AsyncPermstoreClient
    assert permstore.PermstoreError is permstore_client.PermstoreError
    assert permstore.CheckResult is permstore_client.Decision
    assert not hasattr(permstore, "require_permission")
