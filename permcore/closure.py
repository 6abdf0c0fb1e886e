"""The membership closure, kept up to date edge by edge.

For every holder h and every group x it reaches, the closure keeps the length of a shortest
membership path, its first hop and its `via` (the member it enters x by). The path chosen is
the lexicographically first shortest one, which is exactly the path a breadth-first search
visiting neighbours in sorted order finds (`TenantState.paths_from`). That path is local on
the holder's side: its first hop is the smallest-named direct group g of h with
d(g, x) = d(h, x) - 1, and the rest is g's own chosen path to x. So each target group x is a
single-source shortest-path problem on the reversed membership graph, and an edge change is
repaired target by target, touching only the holders whose distance, first hop or via changes
(and their direct members, to re-check their first hops).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

Entry = tuple[int, str, str]
"""(distance, first hop, via) of one holder's shortest path to one group."""


@dataclass(frozen=True, slots=True)
class PathDelta:
    """Holder's path row for group changed from old to new via (None: not reached)."""

    holder: str
    group: str
    old: str | None
    new: str | None


class Closure:
    """Shortest membership paths of every holder, over live member/group indexes."""

    def __init__(self, groups_of: dict[str, set[str]], members: dict[str, set[str]]) -> None:
        self._up = groups_of
        self._down = members
        self.reach: dict[str, dict[str, Entry]] = {}
        self.entries = 0

    @classmethod
    def build(cls, groups_of: dict[str, set[str]], members: dict[str, set[str]]) -> Closure:
        """The closure of the current graph, one sorted breadth-first search per holder."""
        closure = cls(groups_of, members)
        for holder in groups_of:
            paths = closure._search(holder)
            if paths:
                closure.reach[holder] = paths
                closure.entries += len(paths)
        return closure

    def _search(self, holder: str) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        queue = deque([holder])
        while queue:
            member = queue.popleft()
            here = out.get(member)
            depth = here[0] if here is not None else 0
            for group in sorted(self._up.get(member, ())):
                if group != holder and group not in out:
                    first = group if here is None else here[1]
                    out[group] = (depth + 1, first, member)
                    queue.append(group)
        return out

    def via_map(self, holder: str) -> dict[str, str]:
        """Each group the holder reaches, mapped to the member its chosen path enters it by."""
        return {group: entry[2] for group, entry in self.reach.get(holder, {}).items()}

    def reached(self, holder: str) -> Iterable[str]:
        """The groups the holder reaches."""
        return self.reach.get(holder, {}).keys()

    def added(self, group: str, member: str) -> list[PathDelta]:
        """Repair after the edge member -> group was added to the indexes; the changed rows."""
        out: list[PathDelta] = []
        for target in [group, *self.reach.get(group, {})]:
            if target != member:
                self._repair_added(target, group, member, out)
        return out

    def removed(self, group: str, member: str) -> list[PathDelta]:
        """Repair after the edge member -> group was removed from the indexes."""
        out: list[PathDelta] = []
        # Only targets whose shortest paths from member could use the edge are affected; the
        # group's own distances never depend on an edge into it.
        targets = [
            target
            for target, (depth, _, _) in self.reach.get(member, {}).items()
            if self._distance(group, target) == depth - 1
        ]
        for target in targets:
            self._repair_removed(target, member, out)
        return out

    def _distance(self, holder: str, target: str) -> int | None:
        if holder == target:
            return 0
        entry = self.reach.get(holder, {}).get(target)
        return None if entry is None else entry[0]

    def _put(self, target: str, holder: str, depth: int, before: dict[str, str | None]) -> None:
        row = self.reach.setdefault(holder, {})
        old = row.get(target)
        if holder not in before:
            before[holder] = None if old is None else old[2]
        if old is None:
            self.entries += 1
        # First hop and via are settled once every distance of the target is final.
        row[target] = (depth, "", "")

    def _drop(self, target: str, holder: str, before: dict[str, str | None]) -> None:
        row = self.reach[holder]
        old = row.pop(target)
        if holder not in before:
            before[holder] = old[2]
        self.entries -= 1
        if not row:
            del self.reach[holder]

    def _repair_added(self, target: str, group: str, member: str, out: list[PathDelta]) -> None:
        via_group = self._distance(group, target)
        assert via_group is not None
        candidate = via_group + 1
        current = self._distance(member, target)
        before: dict[str, str | None] = {}
        recheck: set[str] = {member}
        if current is not None and candidate > current:
            return
        if current is None or candidate < current:
            self._put(target, member, candidate, before)
            queue = deque([member])
            while queue:
                lower = queue.popleft()
                depth = self.reach[lower][target][0] + 1
                for holder in self._down.get(lower, ()):
                    if holder == target:
                        continue
                    known = self._distance(holder, target)
                    if known is None or depth < known:
                        self._put(target, holder, depth, before)
                        queue.append(holder)
                    recheck.add(holder)
        self._settle(target, recheck, before, out)

    def _has_tight(self, holder: str, target: str, depth: int, lost: set[str]) -> bool:
        for group in self._up.get(holder, ()):
            if group != holder and group not in lost and self._distance(group, target) == depth - 1:
                return True
        return False

    def _repair_removed(self, target: str, member: str, out: list[PathDelta]) -> None:
        before: dict[str, str | None] = {}
        depth = self.reach[member][target][0]
        if self._has_tight(member, target, depth, set()):
            self._settle(target, {member}, before, out)
            return
        # Holders all of whose shortest paths used the edge, found level by level: a holder is
        # lost when none of its tight groups (one step closer) kept its distance.
        lost = {member}
        frontier = [member]
        checked: set[str] = set()
        while frontier:
            following = []
            for lower in frontier:
                depth = self.reach[lower][target][0] + 1
                for holder in self._down.get(lower, ()):
                    if holder == target or holder in lost or holder in checked:
                        continue
                    entry = self.reach.get(holder, {}).get(target)
                    if entry is None or entry[0] != depth:
                        continue
                    checked.add(holder)
                    if not self._has_tight(holder, target, depth, lost):
                        lost.add(holder)
                        following.append(holder)
            frontier = following
        # New distances of the lost holders: from their kept groups, then among themselves.
        heap: list[tuple[int, str]] = []
        estimate: dict[str, int] = {}
        for holder in lost:
            best: int | None = None
            for group in self._up.get(holder, ()):
                if group == holder or group in lost:
                    continue
                known = self._distance(group, target)
                if known is not None and (best is None or known + 1 < best):
                    best = known + 1
            if best is not None:
                estimate[holder] = best
                heap.append((best, holder))
        heapq.heapify(heap)
        final: dict[str, int] = {}
        while heap:
            depth, holder = heapq.heappop(heap)
            if holder in final:
                continue
            final[holder] = depth
            for upper in self._down.get(holder, ()):
                if (
                    upper in lost
                    and upper not in final
                    and depth + 1 < estimate.get(upper, depth + 2)
                ):
                    estimate[upper] = depth + 1
                    heapq.heappush(heap, (depth + 1, upper))
        recheck: set[str] = set(final)
        for holder in lost:
            if holder in final:
                self._put(target, holder, final[holder], before)
            else:
                self._drop(target, holder, before)
            for upper in self._down.get(holder, ()):
                if upper != target and upper not in lost:
                    recheck.add(upper)
        self._settle(target, recheck, before, out)

    def _first_hop(self, holder: str, target: str, depth: int) -> str:
        best: str | None = None
        for group in self._up.get(holder, ()):
            if (
                group != holder
                and (best is None or group < best)
                and self._distance(group, target) == depth - 1
            ):
                best = group
        assert best is not None, (holder, target)
        return best

    def _settle(
        self, target: str, recheck: set[str], before: dict[str, str | None], out: list[PathDelta]
    ) -> None:
        """Choose first hops of the rechecked holders, then vias nearest-first, following each
        changed via to the members whose paths continue through it."""
        heap: list[tuple[int, str]] = []
        for holder in recheck:
            entry = self.reach.get(holder, {}).get(target)
            if entry is None:
                continue
            first = self._first_hop(holder, target, entry[0])
            self.reach[holder][target] = (entry[0], first, entry[2])
            heap.append((entry[0], holder))
        heapq.heapify(heap)
        done: set[str] = set()
        while heap:
            depth, holder = heapq.heappop(heap)
            if holder in done:
                continue
            done.add(holder)
            row = self.reach[holder]
            _, first, stored = row[target]
            via = holder if depth == 1 else self.reach[first][target][2]
            if holder not in before:
                before[holder] = stored
            row[target] = (depth, first, via)
            if via == before[holder]:
                continue
            for upper in self._down.get(holder, ()):
                entry = self.reach.get(upper, {}).get(target)
                if entry is not None and entry[1] == holder and upper not in done:
                    heapq.heappush(heap, (depth + 1, upper))
        for holder, old in before.items():
            entry = self.reach.get(holder, {}).get(target)
            new = None if entry is None else entry[2]
            if new != old:
                out.append(PathDelta(holder, target, old, new))
