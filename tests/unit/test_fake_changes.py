"""The client kit's in-memory permstore serves the change stream with the service's semantics."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from permstore_client.testing import InMemoryPermstore, mock_transport

from permstore.core.projector import to_micros
from permstore.core.state import NEVER
from tests.reference_model import parse_time
from tests.strategies import histories
from tests.unit.test_changes import expected_changes

TENANT = "acme"


def client(store: InMemoryPermstore) -> httpx.Client:
    return httpx.Client(
        base_url="http://permstore.test",
        transport=mock_transport(store),
        headers={"Authorization": "Bearer test"},
    )


def follow_all(http: httpx.Client, after: str, limit: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    while True:
        response = http.get(
            f"/v1/tenants/{TENANT}/changes", params={"after": after, "limit": limit}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["changes"]:
            return records
        records.extend(body["changes"])
        after = body["next"]


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(1, 6))
def test_the_fake_streams_the_reference_diff_of_every_event(
    data: st.DataObject, limit: int
) -> None:
    """Followed page by page, the fake's records are the reference model's diff, per event."""
    events = data.draw(histories(tenant=TENANT, max_events=20))
    store = InMemoryPermstore()
    with client(store) as http:
        start = http.get(f"/v1/tenants/{TENANT}/changes").json()["next"]
        for event in events:
            store.apply([event])
        records = follow_all(http, start, limit)
    by_cause = {e["event_id"]: i for i, e in reversed(list(enumerate(events)))}
    got: dict[int, dict[str, tuple[list[tuple[str, str, int]], list[tuple[str, str]]]]] = {}
    for record in records:
        added = [
            (
                a["resource"],
                a["action"],
                to_micros(parse_time(a["expires_at"])) if a["expires_at"] else NEVER,
            )
            for a in record["added"]
        ]
        removed = [(r["resource"], r["action"]) for r in record["removed"]]
        got.setdefault(by_cause[record["cause"]], {})[record["principal"]] = (added, removed)
    assert got == expected_changes(events)


def test_a_waiting_request_returns_when_a_write_lands() -> None:
    """wait blocks until the next applied change, then answers it; bad tokens are a 400."""
    store = InMemoryPermstore()
    grant = {
        "type": "grant",
        "tenant": TENANT,
        "event_id": "g1",
        "actor": "user:admin",
        "occurred_at": "2026-01-01T00:00:00Z",
        "principal": "user:ann",
        "resource": "doc:a",
        "permission": "read",
    }
    with client(store) as http:
        start = http.get(f"/v1/tenants/{TENANT}/changes").json()["next"]
        timer = threading.Timer(0.3, store.apply, args=([grant],))
        timer.start()
        began = time.monotonic()
        body = http.get(f"/v1/tenants/{TENANT}/changes", params={"after": start, "wait": 10}).json()
        assert time.monotonic() - began < 5
        assert [(r["cause"], r["principal"]) for r in body["changes"]] == [("g1", "user:ann")]
        bad = http.get(f"/v1/tenants/{TENANT}/changes", params={"after": "nope"})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "after"
        assert http.get(f"/v1/tenants/{TENANT}/changes", params={"wait": 31}).status_code == 422
