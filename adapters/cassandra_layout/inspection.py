"""Whole-generation scans for operations (a rebuild's verification), never on a request path."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cassandra.cluster import Session

from permstore.adapters.cassandra_layout.tables import table

SCAN_PAGE = 5000


def permission_rows(
    session: Session, keyspace: str, generation: int
) -> Iterator[tuple[str, str, str, str, Mapping[str, int] | None]]:
    """Every (tenant, principal, pattern, action, sources) row of a generation's views."""
    statement = session.prepare(
        "SELECT tenant, principal, pattern, action, sources "
        f"FROM {table(keyspace, 'permissions_by_principal', generation)}"
    )
    statement.fetch_size = SCAN_PAGE
    for row in session.execute(statement):
        yield row[0], row[1], row[2], row[3], row[4]


def applied_offsets(session: Session, keyspace: str, generation: int) -> dict[str, int]:
    """The applied offset of every tenant in a generation."""
    rows = session.execute(
        "SELECT DISTINCT tenant, applied_offset "
        f"FROM {table(keyspace, 'projector_state', generation)}"
    )
    return {r[0]: int(r[1]) for r in rows if r[1] is not None}
