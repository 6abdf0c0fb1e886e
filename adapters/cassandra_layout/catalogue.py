"""The generation catalogue: which generations of views exist, their state, the active one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cassandra.cluster import Session

from permstore.adapters.cassandra import execute
from permstore.adapters.cassandra_layout.tables import (
    RETIRED_GENERATION_TABLES,
    generation_tables,
    table,
)

GenerationState = Literal["building", "ready", "failed", "active", "retired"]


@dataclass
class GenerationInfo:
    """One generation of views."""

    id: int
    state: str
    created_at: Any
    switched_at: Any
    active: bool


def _active_query(keyspace: str) -> str:
    return f"SELECT id FROM {keyspace}.active_generation WHERE singleton = 0"


def _first_id(rows: Any) -> int | None:
    found = list(rows)
    return int(found[0][0]) if found and found[0][0] is not None else None


def active_generation(session: Session, keyspace: str) -> int | None:
    """The generation readers use, or None before the first bootstrap."""
    return _first_id(session.execute(_active_query(keyspace)))


async def read_active_generation(session: Session, keyspace: str) -> int | None:
    """active_generation without blocking the event loop (the pollers' read)."""
    return _first_id(await execute(session, _active_query(keyspace)))


def generation_ids(session: Session, keyspace: str) -> list[int]:
    """The ids of every generation in the catalogue, in order."""
    return sorted(int(row[0]) for row in session.execute(f"SELECT id FROM {keyspace}.generations"))


def list_generations(session: Session, keyspace: str) -> list[GenerationInfo]:
    """Every generation with its state; the active one flagged."""
    active = active_generation(session, keyspace)
    rows = session.execute(f"SELECT id, state, created_at, switched_at FROM {keyspace}.generations")
    return sorted(
        (GenerationInfo(int(r[0]), r[1], r[2], r[3], int(r[0]) == active) for r in rows),
        key=lambda g: g.id,
    )


def create_active(session: Session, keyspace: str, generation: int) -> None:
    """Record a generation as created and active at once (the first bootstrap)."""
    session.execute(
        f"INSERT INTO {keyspace}.generations (id, state, created_at, switched_at) "
        "VALUES (%s, 'active', toTimestamp(now()), toTimestamp(now()))",
        (generation,),
    )
    session.execute(
        f"INSERT INTO {keyspace}.active_generation (singleton, id) VALUES (0, %s)", (generation,)
    )


def create_building(session: Session, keyspace: str, generation: int) -> None:
    """Record a new generation that a rebuild is filling."""
    session.execute(
        f"INSERT INTO {keyspace}.generations (id, state, created_at) "
        "VALUES (%s, 'building', toTimestamp(now()))",
        (generation,),
    )


def set_state(session: Session, keyspace: str, generation: int, state: GenerationState) -> None:
    """Change a generation's recorded state."""
    session.execute(
        f"UPDATE {keyspace}.generations SET state = %s WHERE id = %s", (state, generation)
    )


def activate(session: Session, keyspace: str, old: int, new: int) -> None:
    """Switch readers from old to new and retire old."""
    session.execute(
        f"INSERT INTO {keyspace}.active_generation (singleton, id) VALUES (0, %s)", (new,)
    )
    session.execute(
        f"UPDATE {keyspace}.generations SET state = 'active', switched_at = toTimestamp(now()) "
        "WHERE id = %s",
        (new,),
    )
    set_state(session, keyspace, old, "retired")


def drop_generation(session: Session, keyspace: str, generation: int) -> None:
    """Drop an inactive generation's tables; refuses the active one."""
    if active_generation(session, keyspace) == generation:
        raise ValueError(f"generation {generation} is active; switch before dropping it")
    for name in (*generation_tables(), *RETIRED_GENERATION_TABLES):
        session.execute(f"DROP TABLE IF EXISTS {table(keyspace, name, generation)}")
    session.execute(f"DELETE FROM {keyspace}.generations WHERE id = %s", (generation,))
