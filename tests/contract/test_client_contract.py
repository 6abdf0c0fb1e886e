"""The contract (sections 3-4) through permstore_client, against the fake AND the real stack.

Each test runs twice (backend memory and stack); a behaviour of the fake that drifts from
the service fails here. Reads rely on the client's read-your-writes (consistency tokens carried
from the last write), so no test sleeps or polls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from permstore_client import (
    InvalidRequestError,
    InvalidTokenError,
    PermstoreClient,
    UnauthenticatedError,
)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def settle(ps: PermstoreClient) -> None:
    """Wait until the views hold this client's writes: listings take no consistency token,
    but a check carries the last write's token (read-your-writes) and waits for it."""
    ps.check("user:settle", "doc:settle", "read")


def test_grant_through_nested_groups_and_role_with_reasons(ps: PermstoreClient) -> None:
    ps.define_role("editor", ["read", "write"])
    ps.add_member("group:backend", "user:alice")
    ps.add_member("group:eng", "group:backend")
    ps.grant("group:eng", "doc:acme/eng/*", "role:editor")
    decision = ps.check("user:alice", "doc:acme/eng/spec-1", "write")
    assert decision.allowed and decision.token
    [reason] = decision.reasons
    assert reason.kind == "group"
    assert reason.grant.principal == "group:eng"
    assert reason.grant.permission == "role:editor"
    assert reason.via_role == "editor"
    assert reason.via_chain == ["group:backend", "group:eng"]
    assert reason.pattern == "doc:acme/eng/*"
    # the pattern covers descendants only, not the path itself
    assert not ps.check("user:alice", "doc:acme/eng", "write").allowed
    assert not ps.check("user:alice", "doc:acme/eng/spec-1", "deploy").allowed
    assert not ps.check("user:bob", "doc:acme/eng/spec-1", "read").allowed


def test_revoke_remove_member_and_delete_role_take_effect(ps: PermstoreClient) -> None:
    ps.define_role("viewer", ["read"])
    ps.add_member("group:g", "user:u")
    ps.grant("group:g", "doc:*", "role:viewer")
    ps.grant("user:u", "doc:x", "write")
    assert ps.check("user:u", "doc:x", "read").allowed
    ps.delete_role("viewer")
    assert not ps.check("user:u", "doc:x", "read").allowed
    ps.define_role("viewer", ["read"])
    assert ps.check("user:u", "doc:x", "read").allowed
    ps.remove_member("group:g", "user:u")
    assert not ps.check("user:u", "doc:x", "read").allowed
    ps.revoke("user:u", "doc:x", "write")
    assert not ps.check("user:u", "doc:x", "write").allowed


def test_expiry_and_batch_in_request_order(ps: PermstoreClient) -> None:
    future = rfc3339(datetime.now(UTC) + timedelta(days=30))
    past = rfc3339(datetime.now(UTC) - timedelta(days=1))
    ps.grant("user:a", "repo:r1", "read", expires_at=future)
    ps.grant("user:a", "repo:r2", "read", expires_at=past)
    answer = ps.check_batch(
        [
            ("user:a", "repo:r1", "read"),
            ("user:a", "repo:r2", "read"),
            ("user:b", "repo:r1", "read"),
        ]
    )
    assert [r.allowed for r in answer.results] == [True, False, False]
    assert answer.results[0].reasons[0].expires_at is not None
    settle(ps)
    [item] = list(ps.permissions("user:a"))
    assert (item.resource, item.action) == ("repo:r1", "read")
    assert item.expires_at is not None


def test_listing_pages_yield_every_item_once(ps: PermstoreClient) -> None:
    ps.publish(
        [
            ps.make_event("grant", principal="user:p", resource=f"doc:d{i}", permission="read")
            for i in range(7)
        ]
    )
    settle(ps)
    first = ps.permissions_page("user:p", limit=3)
    assert len(first.items) == 3 and first.next_cursor
    every = [(p.resource, p.action) for p in ps.permissions("user:p", limit=3)]
    assert sorted(every) == sorted({(f"doc:d{i}", "read") for i in range(7)})
    assert len(every) == 7


def test_who_can_expands_groups_and_never_lists_one(ps: PermstoreClient) -> None:
    ps.add_member("group:ops", "user:o1")
    ps.add_member("group:ops", "service:bot")
    ps.grant("group:ops", "host:web/*", "deploy")
    ps.grant("user:o2", "host:web/1", "deploy")
    settle(ps)
    found = {(p.principal, p.action) for p in ps.who_can("host:web/1", action="deploy")}
    assert found == {("user:o1", "deploy"), ("service:bot", "deploy"), ("user:o2", "deploy")}


def test_duplicate_event_id_is_ignored(ps: PermstoreClient) -> None:
    ps.grant("user:d", "doc:1", "read", event_id="same-id")
    ps.grant("user:d", "doc:2", "read", event_id="same-id")
    assert ps.check("user:d", "doc:1", "read").allowed
    assert not ps.check("user:d", "doc:2", "read").allowed


def test_audit_timeline_and_point_in_time(ps: PermstoreClient) -> None:
    ps.grant("user:h", "doc:h", "read")
    ps.add_member("group:x", "user:h")
    ps.revoke("user:h", "doc:h", "read")
    assert not ps.check("user:h", "doc:h", "read").allowed
    # the check above waited for the views, and the processor writes audit rows with them
    events = list(ps.audit_events(principal="user:h"))
    assert [e.event["type"] for e in events] == ["grant", "add_member", "revoke"]
    assert [e.event["type"] for e in ps.audit_events(resource="doc:h")] == ["grant", "revoke"]
    granted_at = events[0].recorded_at
    then = ps.audit_check("user:h", "doc:h", "read", events[1].recorded_at)
    assert then.allowed and then.reasons[0].grant.principal == "user:h"
    before = datetime.fromisoformat(granted_at) - timedelta(seconds=1)
    assert not ps.audit_check("user:h", "doc:h", "read", rfc3339(before)).allowed
    assert not ps.audit_check("user:h", "doc:h", "read", events[2].recorded_at).allowed


def test_freshness_names_the_applied_point(ps: PermstoreClient) -> None:
    ps.grant("user:f", "doc:f", "read")
    ps.check("user:f", "doc:f", "read")
    fresh = ps.freshness()
    assert fresh.applied_offset >= 0 and fresh.token


def test_bad_input_is_a_typed_error_naming_the_field(ps: PermstoreClient) -> None:
    with pytest.raises(InvalidRequestError) as invalid:
        ps.check("alice", "doc:x", "read")
    assert invalid.value.status == 422
    assert any(d["field"] == "principal" for d in invalid.value.details)
    with pytest.raises(InvalidRequestError) as wildcard:
        ps.check("user:alice", "doc:*", "read")
    assert any(d["field"] == "resource" for d in wildcard.value.details)
    with pytest.raises(InvalidTokenError) as token:
        ps.check("user:alice", "doc:x", "read", at_least="not-a-token")
    assert token.value.status == 400
    with pytest.raises(InvalidRequestError) as event:
        ps.publish([{"event_id": "e1", "tenant": ps.tenant, "type": "grant"}])
    assert event.value.status == 422


def test_no_token_is_unauthenticated(anonymous_ps: PermstoreClient) -> None:
    with pytest.raises(UnauthenticatedError) as error:
        anonymous_ps.check("user:a", "doc:a", "read")
    assert error.value.status == 401


def test_change_stream_pages_are_the_same_on_both_backends(ps: PermstoreClient) -> None:
    """Grant to a group of three, revoke one member's only path: the same records, in the
    same order, pages of two followed by next, from the position before the writes."""
    start = ps.changes()
    assert start.changes == []
    for member in ("user:c1", "user:c2", "user:c3"):
        ps.add_member("group:crew", member)
    ps.grant("group:crew", "doc:crew/*", "read")
    ps.remove_member("group:crew", "user:c2")
    settle(ps)
    seen: list[tuple[str, list[str], list[str]]] = []
    after = start.next
    while True:
        page = ps.changes(after=after, limit=2)
        if not page.changes:
            break
        assert len(page.changes) <= 2
        seen += [
            (
                c.principal,
                [f"{a.action} {a.resource}" for a in c.added],
                [f"{r.action} {r.resource}" for r in c.removed],
            )
            for c in page.changes
        ]
        after = page.next
    assert seen == [
        ("group:crew", ["read doc:crew/*"], []),
        ("user:c1", ["read doc:crew/*"], []),
        ("user:c2", ["read doc:crew/*"], []),
        ("user:c3", ["read doc:crew/*"], []),
        ("user:c2", [], ["read doc:crew/*"]),
    ]
    with pytest.raises(InvalidTokenError):
        ps.changes(after="not-a-token")
