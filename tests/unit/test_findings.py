"""permcore.findings against a brute-force reference computed from the same inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from permstore.core.decisions import Reason
from permstore.core.findings import (
    DAY_US,
    credits,
    fold_inventory,
    unused_findings,
    window_days,
)
from tests.strategies import histories

Event = dict[str, Any]
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


def applied(events: list[Event]) -> list[tuple[Event, int]]:
    """The events the processor applies (a repeated id is ignored), one day apart."""
    seen: set[str] = set()
    out = []
    for index, event in enumerate(events):
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            out.append((event, T0 + index * DAY_US))
    return out


def micros(text: str | None) -> int:
    """Expiry µs of an RFC 3339 text (0: never)."""
    if text is None:
        return 0
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1_000_000)


def reference(
    log: list[tuple[Event, int]], last: dict[tuple[str, str], int], now: int, days: int
) -> set[tuple[str, str, int, str]]:
    """(kind, item, since, recommended type) of every finding, by scanning the log backwards."""
    limit = now - days * DAY_US

    def unused(key: tuple[str, str]) -> bool:
        used = last.get(key)
        return used is None if days == 0 else used is None or used < limit

    found = set()
    triples = {(e["principal"], e["resource"], e["permission"]) for e, _ in log if "resource" in e}
    for triple in triples:
        mine = [
            (e, t)
            for e, t in log
            if "resource" in e and (e["principal"], e["resource"], e["permission"]) == triple
        ]
        if mine[-1][0]["type"] != "grant":
            continue
        expiry = micros(mine[-1][0].get("expires_at"))
        run = []
        for e, t in reversed(mine):
            if e["type"] != "grant":
                break
            run.append(t)
        since = min(run)
        key = ("grant", "|".join(triple))
        if (expiry == 0 or expiry > now) and since <= limit and unused(key):
            found.add((*key, since, "revoke"))
    edges = {(e["group"], e["member"]) for e, _ in log if "member" in e}
    for edge in edges:
        mine = [(e, t) for e, t in log if "member" in e and (e["group"], e["member"]) == edge]
        if mine[-1][0]["type"] != "add_member":
            continue
        run = []
        for e, t in reversed(mine):
            if e["type"] != "add_member":
                break
            run.append(t)
        key = ("membership", "|".join(edge))
        if min(run) <= limit and unused(key):
            found.add((*key, min(run), "remove_member"))
    roles = {e["role"] for e, _ in log if "role" in e}
    for role in roles:
        mine = [(e, t) for e, t in log if e.get("role") == role]
        if mine[-1][0]["type"] != "define_role":
            continue
        actions = set(mine[-1][0]["actions"])
        stale = {}
        for action in actions:
            run = []
            for e, t in reversed(mine):
                if e["type"] != "define_role" or action not in e["actions"]:
                    break
                run.append(t)
            key = ("role_action", f"{role}|{action}")
            if min(run) <= limit and unused(key):
                stale[action] = min(run)
        kind = "define_role" if actions - set(stale) else "delete_role"
        found |= {("role_action", f"{role}|{a}", t, kind) for a, t in stale.items()}
    return found


@settings(max_examples=120, deadline=None)
@given(
    events=histories(max_events=30),
    days=st.sampled_from([0, 1, 3, 10, 40]),
    used=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5000)), max_size=40),
    now_day=st.integers(0, 60),
)
def test_findings_match_the_reference(
    events: list[Event], days: int, used: list[tuple[int, int]], now_day: int
) -> None:
    """Every generated history, usage and window gives the reference's findings, and each
    recommendation removes exactly its thing."""
    log = applied(events)
    inventory = fold_inventory(log)
    everything = (
        [("grant", "|".join(k)) for k in inventory.grants]
        + [("membership", "|".join(k)) for k in inventory.members]
        + [("role_action", f"{r}|{a}") for r, acts in inventory.roles.items() for a in acts]
    )
    last: dict[tuple[str, str], int] = {}
    if everything:
        for pick, day in used:
            last[everything[pick % len(everything)]] = T0 + day * DAY_US // 2
    now = T0 + now_day * DAY_US
    got = unused_findings("acme", inventory, last, {}, now, days)
    assert {(f.kind, f.item, f.since.at, f.recommendation["type"]) for f in got} == reference(
        log, last, now, days
    )
    assert [f.sort_key for f in got] == sorted(f.sort_key for f in got)
    for finding in got:
        event = finding.recommendation
        assert not {"event_id", "actor", "occurred_at"} & set(event)
        if event["type"] == "define_role":
            role_actions = {a for a in inventory.roles[event["role"]]}
            assert set(event["actions"]) < role_actions
            assert finding.item.split("|")[1] not in event["actions"]


def test_applying_every_recommendation_leaves_no_finding() -> None:
    """Folding the recommended events (deduplicated) removes every finding: applying twice
    changes nothing more."""
    log: list[tuple[dict[str, Any], int]] = [
        ({"type": "define_role", "role": "ed", "actions": ["r", "w"], "actor": "a"}, T0),
        (
            {"type": "grant", "principal": "group:g", "resource": "doc:*", "permission": "role:ed"},
            T0,
        ),
        ({"type": "add_member", "group": "group:g", "member": "user:a"}, T0),
    ]
    inventory = fold_inventory(log)
    last = {("role_action", "ed|r"): T0 + 1, ("grant", "group:g|doc:*|role:ed"): T0 + 1}
    now = T0 + 100 * DAY_US
    first = unused_findings("acme", inventory, last, {}, now, 0)
    assert {(f.kind, f.recommendation["type"]) for f in first} == {
        ("membership", "remove_member"),
        ("role_action", "define_role"),
    }
    for finding in first:
        inventory.apply(finding.recommendation, now)
    assert unused_findings("acme", inventory, last, {}, now, 0) == []


def test_credits_name_grant_chain_role_and_permission() -> None:
    """An allowed decision credits its grant, each membership on its chain, the role's action
    and the principal's permission; a denial credits only the denied counter."""
    reason = Reason("user:a", "group:top", "doc:*", "role:ed", 0, ("group:low", "group:top"))
    assert credits("user:a", "read", [reason]) == {
        ("grant", "group:top|doc:*|role:ed"),
        ("membership", "group:low|user:a"),
        ("membership", "group:top|group:low"),
        ("role_action", "ed|read"),
        ("permission", "user:a|doc:*|read"),
    }
    assert credits("user:a", "read", []) == {("denied", "user:a")}


def test_window_days() -> None:
    """The last N day buckets include today; a window of 0 days has none."""
    now = T0 + 5 * DAY_US + 7
    assert window_days(now, 0) == []
    assert window_days(now, 2) == [T0 // DAY_US + 4, T0 // DAY_US + 5]
