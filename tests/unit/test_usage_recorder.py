"""The API worker's usage recorder: bounded, cumulative per incarnation, never retrying."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from permstore.adapters.settings import Settings
from permstore.core.decisions import Reason
from permstore.core.findings import DAY_US
from permstore.services.api.usage import DROPPED, UsageRecorder


@dataclass(frozen=True)
class Item:
    """A check's principal and action."""

    principal: str
    action: str


class FakeProducer:
    """Records what was sent; fails every send while `down`."""

    def __init__(self, sent: list[dict[str, Any]], state: dict[str, bool]) -> None:
        self.sent = sent
        self.state = state

    async def start(self) -> None:
        if self.state["down"]:
            raise ConnectionError("broker down")

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.state["down"]:
            future.set_exception(ConnectionError("broker down"))
        else:
            self.sent.append(orjson.loads(value))
            future.set_result(None)
        return future


NOW = 20_000 * DAY_US + 5


def recorder(sent: list[dict[str, Any]], state: dict[str, bool], **extra: Any) -> UsageRecorder:
    """A recorder with a fixed clock and the fake producer."""
    settings = Settings(**extra)
    return UsageRecorder(settings, lambda: FakeProducer(sent, state), clock=lambda: NOW)


def items(sent: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, str]]:
    """(kind, item) -> (cumulative uses, src) of the last record naming it."""
    out = {}
    for record in sent:
        for kind, item, uses, _ in record["items"]:
            out[(kind, item)] = (uses, record["src"])
    return out


def test_flushes_send_cumulative_counts_and_only_what_changed() -> None:
    sent: list[dict[str, Any]] = []
    usage = recorder(sent, {"down": False})
    grant = Reason("user:a", "user:a", "doc:*", "read", 0)
    usage.record("acme", [Item("user:a", "read")] * 3, [[grant]] * 3)
    usage.record("acme", [Item("user:b", "read")], [[]])
    assert asyncio.run(usage.flush())
    first = items(sent)
    assert first[("grant", "user:a|doc:*|read")][0] == 3
    assert first[("denied", "user:b")][0] == 1
    sent.clear()
    usage.record("acme", [Item("user:a", "read")], [[grant]])
    assert asyncio.run(usage.flush())
    second = items(sent)
    assert second[("grant", "user:a|doc:*|read")][0] == 4  # cumulative, same incarnation
    assert ("denied", "user:b") not in second  # unchanged counters are not resent
    assert {r["day"] for r in sent} == {NOW // DAY_US}


def test_a_failed_flush_drops_counted_and_starts_a_new_incarnation() -> None:
    sent: list[dict[str, Any]] = []
    state = {"down": True}
    usage = recorder(sent, state)
    grant = Reason("user:a", "user:a", "doc:*", "read", 0)
    before = DROPPED.labels("kafka")._value.get()
    usage.record("acme", [Item("user:a", "read")] * 2, [[grant]] * 2)
    assert not asyncio.run(usage.flush())
    # Two uses, each crediting the grant and the permission.
    assert DROPPED.labels("kafka")._value.get() - before == 4
    state["down"] = False
    usage.record("acme", [Item("user:a", "read")], [[grant]])
    assert asyncio.run(usage.flush())
    assert items(sent)[("grant", "user:a|doc:*|read")][0] == 1  # the dropped uses are gone


def test_memory_is_bounded() -> None:
    sent: list[dict[str, Any]] = []
    usage = recorder(sent, {"down": False}, usage_max_entries=100)
    before = DROPPED.labels("full")._value.get()
    for i in range(300):
        reason = Reason(f"user:{i}", f"user:{i}", "doc:*", "read", 0)
        usage.record("acme", [Item(f"user:{i}", "read")], [[reason]])
    usage.drain()
    usage.expand()
    assert len(usage._counts) <= 100
    assert DROPPED.labels("full")._value.get() > before
    assert asyncio.run(usage.flush())
    assert len(usage._counts) == 0  # nearly full after a flush: a new incarnation


def test_disabled_records_nothing() -> None:
    sent: list[dict[str, Any]] = []
    usage = recorder(sent, {"down": False}, usage_enabled=False)
    usage.record("acme", [Item("user:a", "read")], [[]])
    assert asyncio.run(usage.flush())
    assert sent == []
