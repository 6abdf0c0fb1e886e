"""Membership and role reads for the console, from the projector's state rows (read-only)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cachetools import LRUCache

from permstore.adapters.cassandra import execute
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.adapters.cassandra_layout.tables import table
from permstore.core.projector import MEMBER_KIND, ROLE_KIND

# Keys are "group\x1fmember"; every key of one group sorts between these two bounds.
_SEP, _AFTER_SEP = "\x1f", "\x20"
MAX_NESTED_GROUPS = 500
"""Nested expansion stops after this many groups, so a huge graph cannot stall a page."""


@dataclass(frozen=True)
class Member:
    """A member of a group: who, and the group it belongs to directly (depth 1 = direct)."""

    principal: str
    via: str
    depth: int


class Directory:
    """Direct members of a group, its nested members, and role definitions."""

    def __init__(self, reader: ViewReader, keyspace: str) -> None:
        self._reader = reader
        session = reader._session  # the reader's read-only login; this module never writes
        self._session = session
        state = table(keyspace, "projector_state", reader.generation)
        self._members = session.prepare(
            f"SELECT key FROM {state} WHERE tenant = ? AND kind = '{MEMBER_KIND}' "
            "AND key > ? AND key < ?"
        )
        self._roles = session.prepare(
            f"SELECT key, value FROM {state} WHERE tenant = ? AND kind = '{ROLE_KIND}'"
        )

    async def direct_members(self, tenant: str, group: str) -> list[str]:
        """The principals that belong to group directly, sorted."""
        rows = await execute(
            self._session, self._members, (tenant, group + _SEP, group + _AFTER_SEP)
        )
        return sorted(str(r[0]).split(_SEP, 1)[1] for r in rows)

    async def members(self, tenant: str, group: str) -> tuple[list[Member], bool]:
        """Direct and nested members (breadth first, each once); True when cut short.

        The groups of one level are read concurrently, so a page costs one round trip per
        level of nesting rather than one per group.
        """
        found: dict[str, Member] = {}
        level = [group]
        expanded = {group}
        depth = 1
        while level:
            lists = await asyncio.gather(*(self.direct_members(tenant, g) for g in level))
            following: list[str] = []
            for current, listed in zip(level, lists, strict=True):
                for member in listed:
                    if member not in found and member != group:
                        found[member] = Member(member, current, depth)
                    if member.startswith("group:") and member not in expanded:
                        if len(expanded) >= MAX_NESTED_GROUPS:
                            return sorted(found.values(), key=_order), True
                        expanded.add(member)
                        following.append(member)
            level = following
            depth += 1
        return sorted(found.values(), key=_order), False

    async def roles(self, tenant: str) -> dict[str, list[str]]:
        """Every defined role -> its actions, sorted."""
        rows = await execute(self._session, self._roles, (tenant,))
        return {str(r[0]): sorted(str(r[1]).split("\n")) for r in rows if r[1]}


def _order(member: Member) -> tuple[int, str]:
    return member.depth, member.principal


_DIRECTORIES: LRUCache[int, tuple[ViewReader, Directory]] = LRUCache(maxsize=4)


def directory_for(reader: ViewReader, keyspace: str) -> Directory:
    """The directory of the reader's generation (prepared once per reader)."""
    known = _DIRECTORIES.get(id(reader))
    if known is not None and known[0] is reader:
        return known[1]
    made = Directory(reader, keyspace)
    _DIRECTORIES[id(reader)] = (reader, made)
    return made
