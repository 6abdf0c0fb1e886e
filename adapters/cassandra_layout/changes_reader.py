"""Reads of the change stream's tables (schemas/cql/003_changes.cql), in log order."""

from __future__ import annotations

from cassandra.cluster import Session

from permstore.adapters.cassandra import execute
from permstore.core.changes import AFTER_EVENT, bucket_of


class ChangeStore:
    """A tenant's stored change records, read after a position (read only)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        prep = session.prepare
        self._buckets = prep(
            f"SELECT bucket FROM {keyspace}.change_buckets "
            "WHERE tenant = ? AND bucket >= ? AND bucket <= ?"
        )
        self._rows = prep(
            f"SELECT kafka_offset, seq, record FROM {keyspace}.changes "
            "WHERE tenant = ? AND bucket = ? AND (kafka_offset, seq) > (?, ?) LIMIT ?"
        )

    async def after(
        self, tenant: str, offset: int, seq: int | None, upto: int, limit: int
    ) -> list[tuple[int, int, str]]:
        """(offset, seq, record JSON) of the changes after (offset, seq), oldest first, up to
        limit and never past the offset upto (seq None: after the whole event)."""
        if upto < offset or (upto == offset and seq is None):
            return []
        first = bucket_of(max(offset, 0))
        buckets = await execute(self._session, self._buckets, (tenant, first, bucket_of(upto)))
        out: list[tuple[int, int, str]] = []
        for (bucket,) in buckets:
            lower = (offset, AFTER_EVENT if seq is None else seq) if bucket == first else (-1, -1)
            rows = await execute(
                self._session, self._rows, (tenant, bucket, *lower, limit - len(out))
            )
            for row_offset, row_seq, record in rows:
                if row_offset > upto:
                    return out
                out.append((int(row_offset), int(row_seq), str(record)))
            if len(out) >= limit:
                break
        return out
