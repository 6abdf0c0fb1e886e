"""How values become cells: write timestamps, audit subjects, months, view rows, snapshots.

Written once here and used by both the writer and the reader, so the two sides cannot drift.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from permstore.core.projector import RecordedEvent
from permstore.core.replay import dump_state, load_snapshot
from permstore.core.state import TenantState
from permstore.schemas.events import (
    AddMemberEvent,
    DefineRoleEvent,
    DeleteRoleEvent,
    GrantEvent,
    RemoveMemberEvent,
    RevokeEvent,
)

# The `months` subject under which every month holding any of the tenant's events is listed.
ALL_EVENTS_SUBJECT = "*"
SNAPSHOT_COMPRESSION_LEVEL = 6

Rows = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
"""(pattern, (source, expiry) pairs) rows of one check.

Nested tuples of strings and ints only: CPython stops tracking such tuples in its cycle
collector, so tens of thousands of cached rows add nothing to a full collection's pause.
"""


def write_timestamp(offset: int) -> int:
    """Cassandra write timestamp of everything an event at this offset writes."""
    return offset + 1


def principal_subject(principal: str) -> str:
    """The audit index key of events naming a principal."""
    return f"p:{principal}"


def resource_subject(resource: str) -> str:
    """The audit index key of events naming a resource or pattern."""
    return f"r:{resource}"


def role_subject(role: str) -> str:
    """The audit index key of events defining or deleting a role."""
    return f"role:{role}"


def audit_subjects(recorded: RecordedEvent) -> list[str]:
    """Audit index keys an event is filed under: the principals and resources it names."""
    match recorded.event:
        case GrantEvent() | RevokeEvent() as e:
            return [principal_subject(e.principal), resource_subject(e.resource)]
        case AddMemberEvent() | RemoveMemberEvent() as e:
            return [principal_subject(e.group), principal_subject(e.member)]
        case DefineRoleEvent() | DeleteRoleEvent() as e:
            return [role_subject(e.role)]
    return []


def month_of(recorded_at_us: int) -> int:
    """The yyyymm bucket of a recorded time (epoch microseconds)."""
    moment = datetime.fromtimestamp(recorded_at_us / 1_000_000, UTC)
    return moment.year * 100 + moment.month


def compact_rows(result: Iterable[Sequence[Any]]) -> Rows:
    """A check read's (pattern, sources map) rows as nested tuples."""
    return tuple((row[0], tuple(row[1].items()) if row[1] else ()) for row in result)


def encode_snapshot(state: TenantState) -> bytes:
    """A projector state as the bytes stored in snapshot chunks."""
    return zlib.compress(dump_state(state), SNAPSHOT_COMPRESSION_LEVEL)


def decode_snapshot(blob: bytes) -> TenantState:
    """Inverse of encode_snapshot."""
    return load_snapshot(zlib.decompress(blob))
