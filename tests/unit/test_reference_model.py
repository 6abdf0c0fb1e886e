"""Pin down every rule of contract section 3 on the reference model itself."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference_model import (
    Event,
    ReferenceModel,
    is_pattern,
    is_resource,
    parse_time,
    pattern_matches,
    record_problem,
    validate_event,
)
from tests.strategies import (
    BASE,
    check_times,
    histories,
    labelled_poison_records,
    poison_records,
    recorded_times,
    tied_recorded_times,
    universe,
)

T0 = BASE
SECOND = timedelta(seconds=1)
_ids = count()


def ev(etype: str, tenant: str = "acme", event_id: str | None = None, **fields: Any) -> Event:
    event: Event = {
        "event_id": event_id if event_id is not None else f"x{next(_ids)}",
        "tenant": tenant,
        "type": etype,
        "actor": "user:admin",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    event.update(fields)
    return event


def grant(principal: str, resource: str, permission: str, **extra: Any) -> Event:
    return ev("grant", principal=principal, resource=resource, permission=permission, **extra)


def revoke(principal: str, resource: str, permission: str) -> Event:
    return ev("revoke", principal=principal, resource=resource, permission=permission)


def add(group: str, member: str) -> Event:
    return ev("add_member", group=group, member=member)


def remove(group: str, member: str) -> Event:
    return ev("remove_member", group=group, member=member)


def define(role: str, *actions: str) -> Event:
    return ev("define_role", role=role, actions=list(actions))


def delete(role: str) -> Event:
    return ev("delete_role", role=role)


def model(*events: Event) -> ReferenceModel:
    """Event i recorded at T0 + i s."""
    return ReferenceModel(list(zip(events, recorded_times(len(events)), strict=True)))


def after(k: int) -> datetime:
    """The recorded time of the k-th event (1-based): the first k events are applied."""
    return T0 + timedelta(seconds=k - 1)


# --------------------------------------------------------------------------
# Rules 1-4 on small hand-written logs
# --------------------------------------------------------------------------


def test_empty_log_allows_nothing() -> None:
    assert not model().allowed("user:a", "doc:x", "read", after(0))


def test_direct_grant() -> None:
    m = model(grant("user:a", "doc:x", "read"))
    assert m.allowed("user:a", "doc:x", "read", after(1))
    assert not m.allowed("user:a", "doc:x", "write", after(1))
    assert not m.allowed("user:b", "doc:x", "read", after(1))
    assert not m.allowed("user:a", "doc:y", "read", after(1))
    assert m.effective_permissions("user:a", after(1)) == {("doc:x", "read")}
    assert m.who_can("doc:x", "read", after(1)) == {"user:a"}


def test_revoke_removes_exactly_that_triple() -> None:
    m = model(
        grant("user:a", "doc:x", "read"),
        grant("user:a", "doc:x", "write"),
        grant("user:a", "doc:*", "read"),
        revoke("user:a", "doc:x", "read"),
    )
    # doc:* still gives read; write untouched
    assert m.allowed("user:a", "doc:x", "read", after(4))
    assert m.allowed("user:a", "doc:x", "write", after(4))
    assert m.effective_permissions("user:a", after(4)) == {("doc:x", "write"), ("doc:*", "read")}
    m2 = model(grant("user:a", "doc:*", "read"), revoke("user:a", "doc:*", "read"))
    assert not m2.allowed("user:a", "doc:x", "read", after(2))


def test_revoke_of_missing_grant_changes_nothing() -> None:
    m = model(grant("user:a", "doc:x", "read"), revoke("user:a", "doc:y", "read"))
    assert m.allowed("user:a", "doc:x", "read", after(2))


def test_grant_again_replaces_expiry() -> None:
    expiring = grant("user:a", "doc:x", "read", expires_at="2026-01-01T00:00:10Z")
    ten = T0 + timedelta(seconds=10)
    m = model(grant("user:a", "doc:x", "read"), expiring)
    assert m.allowed("user:a", "doc:x", "read", after(2))
    assert m.allowed("user:a", "doc:x", "read", ten - SECOND)
    assert not m.allowed("user:a", "doc:x", "read", ten)
    m2 = model(expiring, grant("user:a", "doc:x", "read"))
    assert m2.allowed("user:a", "doc:x", "read", ten + timedelta(days=3650))


def test_nested_groups() -> None:
    m = model(
        add("group:g1", "user:a"),
        add("group:g2", "group:g1"),
        add("group:g3", "group:g2"),
        grant("group:g3", "repo:r", "deploy"),
    )
    assert m.allowed("user:a", "repo:r", "deploy", after(4))
    assert m.allowed("group:g1", "repo:r", "deploy", after(4))
    assert not m.allowed("user:b", "repo:r", "deploy", after(4))
    assert m.who_can("repo:r", "deploy", after(4)) == {"user:a"}  # never a group
    assert m.effective_permissions("user:a", after(4)) == {("repo:r", "deploy")}


def test_membership_goes_upward_only() -> None:
    m = model(add("group:g1", "group:g2"), grant("group:g2", "doc:x", "read"))
    # g1 contains g2; members of g1 do not get g2's grants
    assert not m.allowed("group:g1", "doc:x", "read", after(2))
    m2 = model(
        add("group:g1", "user:a"), add("group:g1", "group:g2"), grant("group:g2", "doc:x", "read")
    )
    assert not m2.allowed("user:a", "doc:x", "read", after(3))


def test_cycles_are_harmless() -> None:
    m = model(
        add("group:g1", "group:g2"),
        add("group:g2", "group:g1"),
        add("group:g2", "user:a"),
        grant("group:g1", "doc:x", "read"),
    )
    assert m.allowed("user:a", "doc:x", "read", after(4))
    assert not m.allowed("user:b", "doc:x", "read", after(4))


def test_group_in_itself() -> None:
    m = model(add("group:g1", "group:g1"), grant("group:g1", "doc:x", "read"))
    assert m.allowed("group:g1", "doc:x", "read", after(2))
    assert not m.allowed("user:a", "doc:x", "read", after(2))
    m2 = model(
        add("group:g1", "group:g1"), add("group:g1", "user:a"), grant("group:g1", "doc:x", "read")
    )
    assert m2.allowed("user:a", "doc:x", "read", after(3))


def test_removal_in_middle_of_chain_cuts_access() -> None:
    m = model(
        add("group:g1", "user:a"),
        add("group:g2", "group:g1"),
        add("group:g3", "group:g2"),
        grant("group:g3", "doc:x", "read"),
        remove("group:g2", "group:g1"),
    )
    assert m.allowed("user:a", "doc:x", "read", after(4))
    assert not m.allowed("user:a", "doc:x", "read", after(5))
    assert m.allowed("group:g2", "doc:x", "read", after(5))


def test_second_path_survives_removal_of_one() -> None:
    m = model(
        add("group:g1", "user:a"),
        add("group:g2", "user:a"),
        grant("group:g1", "doc:x", "read"),
        grant("group:g2", "doc:x", "read"),
        remove("group:g1", "user:a"),
    )
    assert m.allowed("user:a", "doc:x", "read", after(5))


def test_remove_non_member_changes_nothing() -> None:
    m = model(
        add("group:g1", "user:a"), grant("group:g1", "doc:x", "read"), remove("group:g1", "user:b")
    )
    assert m.allowed("user:a", "doc:x", "read", after(3))


def test_roles_define_redefine_delete_define_again() -> None:
    events = [
        grant("user:a", "doc:x", "role:editor"),  # role undefined yet
        define("role:editor", "read", "write"),
        define("role:editor", "read"),  # redefinition replaces
        delete("role:editor"),
        define("role:editor", "write", "deploy"),  # defined again: the grant confers again
    ]
    m = model(*events)
    assert not m.allowed("user:a", "doc:x", "read", after(1))
    assert m.allowed("user:a", "doc:x", "read", after(2))
    assert m.allowed("user:a", "doc:x", "write", after(2))
    assert m.allowed("user:a", "doc:x", "read", after(3))
    assert not m.allowed("user:a", "doc:x", "write", after(3))
    assert not m.allowed("user:a", "doc:x", "read", after(4))
    assert m.effective_permissions("user:a", after(4)) == set()
    assert not m.allowed("user:a", "doc:x", "read", after(5))
    assert m.allowed("user:a", "doc:x", "write", after(5))
    assert m.allowed("user:a", "doc:x", "deploy", after(5))
    assert m.effective_permissions("user:a", after(5)) == {("doc:x", "write"), ("doc:x", "deploy")}


def test_role_field_bare_or_prefixed_name_the_same_role() -> None:
    m = model(grant("user:a", "doc:x", "role:viewer"), define("viewer", "read"))
    assert m.allowed("user:a", "doc:x", "read", after(2))
    m2 = model(
        grant("user:a", "doc:x", "role:viewer"), define("viewer", "read"), delete("role:viewer")
    )
    assert not m2.allowed("user:a", "doc:x", "read", after(3))


def test_delete_undefined_role_changes_nothing() -> None:
    m = model(
        define("role:viewer", "read"),
        grant("user:a", "doc:x", "role:viewer"),
        delete("role:editor"),
    )
    assert m.allowed("user:a", "doc:x", "read", after(3))


def test_role_and_action_named_alike_are_distinct() -> None:
    # permission "editor" is an action, not the role
    m = model(define("role:editor", "read"), grant("user:a", "doc:x", "editor"))
    assert not m.allowed("user:a", "doc:x", "read", after(2))
    assert m.allowed("user:a", "doc:x", "editor", after(2))


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("doc:a", "doc:a", True),
        ("doc:a", "doc:a/b", False),
        ("doc:a/b", "doc:a", False),
        ("doc:a/*", "doc:a/b", True),
        ("doc:a/*", "doc:a/b/c", True),
        ("doc:a/*", "doc:a", False),  # not the path itself
        ("doc:a/*", "doc:ab", False),
        ("doc:a/*", "doc:ab/x", False),  # T:p/* does not match T:pa/x
        ("doc:a/*", "repo:a/b", False),
        ("doc:a/b/*", "doc:a/b/c", True),
        ("doc:a/b/*", "doc:a/b", False),
        ("doc:a/b/*", "doc:a/x", False),
        ("doc:a/b/*", "doc:a/bc/d", False),
        ("doc:*", "doc:a", True),
        ("doc:*", "doc:a/b/c", True),
        ("doc:*", "repo:a", False),
        ("doc:*", "docs:a", False),
        ("do:*", "doc:a", False),
    ],
)
def test_pattern_matching(pattern: str, resource: str, expected: bool) -> None:
    assert pattern_matches(pattern, resource) is expected
    m = model(grant("user:a", pattern, "read"))
    assert m.allowed("user:a", resource, "read", after(1)) is expected


def test_check_on_a_pattern_is_invalid() -> None:
    m = model(grant("user:a", "doc:*", "read"))
    with pytest.raises(ValueError):
        m.allowed("user:a", "doc:*", "read", after(1))
    with pytest.raises(ValueError):
        m.allowed("user:a", "doc:a/*", "read", after(1))
    with pytest.raises(ValueError):
        m.who_can("doc:*", "read", after(1))


def test_expiry_must_be_strictly_later() -> None:
    m = model(grant("user:a", "doc:x", "read", expires_at="2026-01-01T01:00:00Z"))
    expiry = T0 + timedelta(hours=1)
    assert m.allowed("user:a", "doc:x", "read", expiry - timedelta(microseconds=1))
    assert not m.allowed("user:a", "doc:x", "read", expiry)
    assert not m.allowed("user:a", "doc:x", "read", expiry + SECOND)
    assert m.effective_permissions("user:a", expiry) == set()
    assert m.who_can("doc:x", "read", expiry) == set()


def test_expiry_with_offset_is_the_same_instant() -> None:
    m = model(grant("user:a", "doc:x", "read", expires_at="2026-01-01T02:00:00+01:00"))
    expiry = T0 + timedelta(hours=1)
    assert m.allowed("user:a", "doc:x", "read", expiry - SECOND)
    assert not m.allowed("user:a", "doc:x", "read", expiry)


def test_grant_already_expired_when_recorded_confers_nothing() -> None:
    m = model(grant("user:a", "doc:x", "read", expires_at="2025-12-31T23:00:00Z"))
    assert not m.allowed("user:a", "doc:x", "read", after(1))


def test_expired_group_grant() -> None:
    m = model(
        add("group:g", "user:a"),
        grant("group:g", "doc:x", "read", expires_at="2026-01-01T00:00:10Z"),
    )
    ten = T0 + timedelta(seconds=10)
    assert m.allowed("user:a", "doc:x", "read", after(2))
    assert m.allowed("user:a", "doc:x", "read", ten - timedelta(microseconds=1))
    assert not m.allowed("user:a", "doc:x", "read", ten)


def test_duplicate_event_id_is_ignored() -> None:
    first = grant("user:a", "doc:x", "read")
    first["event_id"] = "e1"
    retry_other_content = revoke("user:a", "doc:x", "read")
    retry_other_content["event_id"] = "e1"
    m = model(first, retry_other_content)
    assert m.allowed("user:a", "doc:x", "read", after(2))
    # same id first as a revoke of nothing: the later grant is the duplicate
    m2 = model(retry_other_content, first)
    assert not m2.allowed("user:a", "doc:x", "read", after(2))


def test_event_recorded_after_at_is_not_applied() -> None:
    m = model(grant("user:a", "doc:x", "read"), revoke("user:a", "doc:x", "read"))
    assert not m.allowed("user:a", "doc:x", "read", T0 - SECOND)
    assert m.allowed("user:a", "doc:x", "read", T0)  # recorded_at == at is applied
    assert m.allowed("user:a", "doc:x", "read", T0 + timedelta(milliseconds=999))
    assert not m.allowed("user:a", "doc:x", "read", T0 + SECOND)


def test_tied_recorded_times_apply_together() -> None:
    events = [grant("user:a", "doc:x", "read"), revoke("user:a", "doc:x", "read")]
    m = ReferenceModel([(events[0], T0), (events[1], T0)])
    assert not m.allowed("user:a", "doc:x", "read", T0)


def test_tenant_isolation() -> None:
    a = ev(
        "grant",
        tenant="acme",
        event_id="e1",
        principal="user:a",
        resource="doc:x",
        permission="read",
    )
    b = ev(
        "revoke",
        tenant="beta",
        event_id="e1",
        principal="user:a",
        resource="doc:x",
        permission="read",
    )
    c = ev("add_member", tenant="beta", event_id="e2", group="group:g", member="user:b")
    d = ev(
        "grant",
        tenant="acme",
        event_id="e3",
        principal="group:g",
        resource="doc:x",
        permission="read",
    )
    m = ReferenceModel([(a, T0), (b, T0), (c, T0), (d, T0)])
    assert m.tenants == ["acme", "beta"]
    # same event id in another tenant is not a duplicate; revoke in beta does not touch acme
    assert m.allowed("user:a", "doc:x", "read", T0, tenant="acme")
    assert not m.allowed("user:a", "doc:x", "read", T0, tenant="beta")
    # membership in beta does not give acme's group grant
    assert not m.allowed("user:b", "doc:x", "read", T0, tenant="acme")
    assert m.who_can("doc:x", "read", T0, tenant="acme") == {"user:a"}
    assert m.who_can("doc:x", "read", T0, tenant="beta") == set()
    assert not m.allowed("user:a", "doc:x", "read", T0, tenant="gamma")
    with pytest.raises(ValueError):
        m.allowed("user:a", "doc:x", "read", T0)  # ambiguous tenant
    assert ReferenceModel([(a, T0)], default_tenant="acme").allowed("user:a", "doc:x", "read", T0)


def test_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        ReferenceModel([(grant("user:a", "doc:a//b", "read"), T0)])
    events = [grant("user:a", "doc:x", "read"), grant("user:a", "doc:y", "read")]
    with pytest.raises(ValueError):
        ReferenceModel([(events[0], T0 + SECOND), (events[1], T0)])
    with pytest.raises(ValueError):
        ReferenceModel([(events[0], datetime(2026, 1, 1))])
    with pytest.raises(ValueError):
        model(events[0]).allowed("user:a", "doc:x", "read", datetime(2026, 1, 1))


# --------------------------------------------------------------------------
# Identifier and time helpers
# --------------------------------------------------------------------------


def test_identifier_grammar() -> None:
    assert is_resource("doc:" + "/".join(["s"] * 16))
    assert not is_resource("doc:" + "/".join(["s"] * 17))
    assert not is_resource("doc:a/*")
    assert is_pattern("doc:a/*")
    assert is_pattern("doc:*")
    assert not is_pattern("doc:a//b")
    assert not is_pattern("doc:*/a")
    ok = ev("define_role", role="role:r", actions=[f"a{i}" for i in range(256)])
    assert validate_event(ok) is None
    assert (
        validate_event(ev("grant", principal="user:a", resource="doc:a/*", permission="read"))
        is None
    )
    assert (
        validate_event(ev("revoke", principal="user:a", resource="doc:*", permission="read"))
        is None
    )
    assert (
        validate_event(ev("grant", principal="user:a", resource="doc:x", permission="Read"))
        is not None
    )
    assert validate_event(dict(ev("delete_role", role="viewer"), reason="r" * 1024)) is None
    assert validate_event(dict(ev("delete_role", role="viewer"), reason="r" * 1025)) is not None


def test_parse_time() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == BASE
    assert parse_time("2026-01-01T01:00:00+01:00") == BASE
    assert parse_time("2025-12-31T18:30:00-05:30") == BASE
    assert parse_time("2026-01-01T00:00:00.5Z") == BASE + timedelta(milliseconds=500)
    for bad in ("2026-01-01", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z", "x"):
        with pytest.raises(ValueError):
            parse_time(bad)


# --------------------------------------------------------------------------
# The strategies themselves
# --------------------------------------------------------------------------

REQUIRED = ("event_id", "tenant", "type", "actor", "occurred_at")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), data=st.data())
def test_histories_are_valid_and_reference_handles_them(
    history: list[Event], data: st.DataObject
) -> None:
    for event in history:
        for name in REQUIRED:
            assert name in event
        assert event["tenant"] == "acme"
        assert validate_event(event) is None, event
        assert record_problem(json.dumps(event).encode()) is None
    m = ReferenceModel(list(zip(history, recorded_times(len(history)), strict=True)))
    at = data.draw(check_times(len(history)))
    u = universe()
    for principal in u.principals:
        effective = m.effective_permissions(principal, at)
        for resource in u.resources:
            for action in u.actions:
                expected = any(a == action and pattern_matches(x, resource) for (x, a) in effective)
                assert m.allowed(principal, resource, action, at) is expected
    resource = data.draw(st.sampled_from(u.resources))
    action = data.draw(st.sampled_from(u.actions))
    who = m.who_can(resource, action, at)
    expected_who = {p for p in (*u.users, *u.services) if m.allowed(p, resource, action, at)}
    assert who == expected_who


@settings(max_examples=50, deadline=None)
@given(history=histories(tenant="beta", max_events=20), data=st.data())
def test_tied_times_are_accepted(history: list[Event], data: st.DataObject) -> None:
    times = data.draw(tied_recorded_times(len(history)))
    assert times == sorted(times)
    m = ReferenceModel(list(zip(history, times, strict=True)))
    m.allowed("user:u0", "doc:a/b", "read", data.draw(check_times(len(history))))


def test_histories_exercise_interesting_cases() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(history=histories())
    def collect(history: list[Event]) -> None:
        ids: set[str] = set()
        for event in history:
            if event["event_id"] in ids:
                seen.add("duplicate")
            ids.add(event["event_id"])
            seen.add(event["type"])
            if event["type"] == "add_member" and event["group"] == event["member"]:
                seen.add("self-member")
            if event["type"] == "grant" and "expires_at" in event:
                seen.add("expiring grant")
            if event["type"] == "grant" and event["resource"].endswith("*"):
                seen.add("wildcard grant")

    collect()
    assert seen >= {
        "grant",
        "revoke",
        "add_member",
        "remove_member",
        "define_role",
        "delete_role",
        "duplicate",
        "self-member",
        "expiring grant",
        "wildcard grant",
    }


@settings(max_examples=300, deadline=None)
@given(labelled=labelled_poison_records())
def test_poison_records_are_invalid(labelled: tuple[str, bytes]) -> None:
    label, raw = labelled
    assert record_problem(raw) is not None, label


@given(raw=poison_records())
def test_poison_records_are_bytes(raw: bytes) -> None:
    assert isinstance(raw, bytes)


@settings(max_examples=50, deadline=None)
@given(history=histories(max_events=20, role_field_prefix="role:"))
def test_prefixed_role_field_variant(history: list[Event]) -> None:
    for event in history:
        assert validate_event(event) is None, event
        if event["type"] in ("define_role", "delete_role"):
            assert event["role"].startswith("role:")
    m = ReferenceModel(list(zip(history, recorded_times(len(history)), strict=True)))
    m.who_can("doc:a/b", "read", BASE + timedelta(seconds=len(history)))
