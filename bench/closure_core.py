"""Pure-core cost of membership changes: `python -m bench.closure_core [--sizes 100,200,300,1000]`.

No Kafka or Cassandra: project_batch on an in-memory state, as the processor calls it.
- chain: a user in group c1, then c1 into c2, c2 into c3, ... one add_member at a time (every
  link adds one reached group to every holder below it: n^2/2 path rows in all);
- cut: the chain's middle link removed and added back;
- nest: a group of N users nested into a group holding G grants (N x G view cells).
Prints figures and writes bench/results/closure_core.json.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import orjson

from bench.common import RESULTS, say, utc_now
from permstore.core.projector import RecordedEvent, project_batch
from permstore.core.state import TenantState
from permstore.schemas.events import parse_event

TENANT = "bench"


def _event(n: int, kind: str, **fields: str) -> RecordedEvent:
    body: dict[str, Any] = {
        "event_id": f"e{n}",
        "tenant": TENANT,
        "type": kind,
        "actor": "user:bench",
        "occurred_at": "2026-12-02T00:00:00Z",
        **fields,
    }
    return RecordedEvent(parse_event(orjson.dumps(body)), n, 1_000_000 + n)


def chain_seconds(links: int) -> dict[str, Any]:
    """Build the chain one event (one project_batch call) at a time; then cut and mend it."""
    state = TenantState()
    events = [_event(0, "add_member", group="group:c1", member="user:deep")]
    events += [
        _event(k, "add_member", group=f"group:c{k + 1}", member=f"group:c{k}")
        for k in range(1, links)
    ]
    rows = 0
    started = time.perf_counter()
    for recorded in events:
        rows += sum(len(e.paths) for e in project_batch(state, [recorded], ()).effects)
    built = time.perf_counter() - started
    middle = links // 2
    started = time.perf_counter()
    cut = project_batch(
        state,
        [
            _event(links, "remove_member", group=f"group:c{middle + 1}", member=f"group:c{middle}"),
            _event(
                links + 1, "add_member", group=f"group:c{middle + 1}", member=f"group:c{middle}"
            ),
        ],
        (),
    )
    mended = time.perf_counter() - started
    return {
        "links": links,
        "build_s": round(built, 4),
        "path_rows": rows,
        "cut_and_mend_s": round(mended, 4),
        "cut_and_mend_path_rows": sum(len(e.paths) for e in cut.effects),
    }


def nest_seconds(users: int, grants: int) -> dict[str, Any]:
    """Nest a group of `users` users into a group with `grants` grants (one event)."""
    state = TenantState()
    setup = [_event(i, "add_member", group="group:big", member=f"user:u{i}") for i in range(users)]
    setup += [
        _event(users + j, "grant", principal="group:top", resource=f"doc:d{j}", permission="read")
        for j in range(grants)
    ]
    project_batch(state, setup, ())
    started = time.perf_counter()
    effects = project_batch(
        state, [_event(users + grants, "add_member", group="group:top", member="group:big")], ()
    )
    seconds = time.perf_counter() - started
    cells = effects.view_change_count()
    return {
        "users": users,
        "grants": grants,
        "view_cells": cells,
        "seconds": round(seconds, 4),
        "cells_per_s": round(cells / seconds),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the series and save the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.closure_core", description=__doc__)
    parser.add_argument("--sizes", default="100,200,300,1000")
    parser.add_argument("--nest", default="20000x10,50000x100")
    parser.add_argument("--out", default=str(RESULTS / "closure_core.json"))
    args = parser.parse_args(argv)
    chains = []
    for links in (int(s) for s in args.sizes.split(",") if s):
        chains.append(chain_seconds(links))
        say(f"chain {links}: {chains[-1]}")
    nests = []
    for spec in (s for s in args.nest.split(",") if s):
        users, grants = (int(x) for x in spec.split("x"))
        nests.append(nest_seconds(users, grants))
        say(f"nest {spec}: {nests[-1]}")
    result = {"when": utc_now(), "chains": chains, "nests": nests}
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
