"""Shared helpers of the HTTP end-to-end tests: event builders, calls and error-body checks."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from tests.support.events import (
    ADMIN,
    add_member,
    define_role,
    delete_role,
    event,
    grant,
    remove_member,
    revoke,
    rfc3339,
)

__all__ = [
    "ADMIN",
    "add_member",
    "define_role",
    "delete_role",
    "event",
    "grant",
    "remove_member",
    "revoke",
    "rfc3339",
]

TokenFactory = Callable[..., str]


def now_plus(seconds: float) -> str:
    """RFC 3339 text of now plus seconds (negative for the past)."""
    return rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as the API renders it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bearer(token: str) -> dict[str, str]:
    """Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def publish(http: httpx.Client, events: Sequence[Mapping[str, Any]]) -> str:
    """POST events, asserting the contract's 202 answer; returns the consistency token."""
    response = http.post("/v1/events", json={"events": list(events)})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(events)
    assert isinstance(body["token"], str) and body["token"]
    return str(body["token"])


def publish_each(http: httpx.Client, events: Sequence[Mapping[str, Any]]) -> str:
    """POST events one request each, a little apart, so their recorded times differ."""
    token = ""
    for item in events:
        token = publish(http, [item])
        time.sleep(0.01)
    return token


def check(
    http: httpx.Client,
    tenant: str,
    principal: str,
    resource: str,
    action: str,
    at_least: str | None = None,
) -> dict[str, Any]:
    """POST /v1/check, asserting 200 and the answer's shape."""
    body: dict[str, Any] = {
        "tenant": tenant,
        "principal": principal,
        "resource": resource,
        "action": action,
    }
    if at_least is not None:
        body["consistency"] = {"at_least": at_least}
    response = http.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert set(answer) == {"allowed", "token", "reasons"}
    assert answer["allowed"] is bool(answer["reasons"])
    return answer


def sync(http: httpx.Client, tenant: str, token: str, timeout: float = 90) -> None:
    """Wait (through the API) until the views include the write that returned token.

    A large backlog may take the processor longer than the API's 5 s bound, so a
    consistency timeout is retried until timeout; any other answer fails at once.
    """
    body = {
        "tenant": tenant,
        "principal": "user:nobody",
        "resource": "sync:point",
        "action": "noop",
        "consistency": {"at_least": token},
    }
    deadline = time.monotonic() + timeout
    while True:
        response = http.post("/v1/check", json=body)
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "consistency_timeout", response.text
        assert time.monotonic() < deadline, f"views did not reach {token} in {timeout} s"


def q(value: str) -> str:
    """Percent-encode one path segment (slashes included)."""
    return quote(value, safe="")


def permissions_path(tenant: str, principal: str) -> str:
    """Path of a principal's permission list."""
    return f"/v1/tenants/{q(tenant)}/principals/{q(principal)}/permissions"


def who_can_path(tenant: str, resource: str) -> str:
    """Path of who-can for a resource."""
    return f"/v1/tenants/{q(tenant)}/resources/{q(resource)}/principals"


def audit_events_path(tenant: str) -> str:
    """Path of the audit timeline."""
    return f"/v1/tenants/{q(tenant)}/audit/events"


def audit_check_path(tenant: str) -> str:
    """Path of the audit check."""
    return f"/v1/tenants/{q(tenant)}/audit/check"


def all_pages(
    http: httpx.Client, path: str, key: str, params: Mapping[str, Any], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Follow next_cursor from the first page; returns (every item, number of pages)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, "limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        response = http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body[key]) <= limit
        items.extend(body[key])
        pages += 1
        assert pages < 10_000, "paging does not end"
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert isinstance(cursor, str) and cursor


def assert_error(
    response: httpx.Response, status: int | Sequence[int], field: str | None = None
) -> dict[str, Any]:
    """Assert the contract's error body and status; optionally that details name field."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert isinstance(error["details"], list), error
        named = [d["field"] for d in error["details"]]
        assert field in named, (field, named)
    result: dict[str, Any] = error
    return result


def make_cursor(value: Any) -> str:
    """A cursor in the API's encoding, for forging ones it did not issue."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
