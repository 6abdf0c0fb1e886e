"""One large nest through the stack, for A/B work on the fan-out path: `python -m bench.nest_probe`.

Each run loads a fresh tenant with U members in one group and G grants on another, then
nests the first into the second (U x G view rows in one event) and prints view rows/s from the
append to the processor's counter, with the CPU microseconds the processor and Cassandra spent per
row. Alternate two builds run after run to compare them as ratios within one sitting.
"""

from __future__ import annotations

import argparse
import json

from bench import events as ev
from bench.common import JsonDict, say
from bench.monitor import ResourceMonitor
from bench.profiling import Profile
from bench.scenario import Options, Stack
from bench.stack import seconds_since_append, wait_applied


def nest_once(stack: Stack, tenant: str, users: int, grants: int, profile: bool) -> JsonDict:
    """Load one tenant, nest its member group into its granted group, and time the nest."""
    setup = [ev.add_member(tenant, "group:big", f"user:u{i}") for i in range(users)]
    setup += [ev.grant(tenant, "group:top", f"doc:{tenant}/d{j}", "read") for j in range(grants)]
    stack.load(setup, f"{tenant} setup", timeout=900)
    processor = stack.processor
    assert processor is not None
    before_applied, before_rows = processor.applied()
    with ResourceMonitor(stack.server_pids()) as monitor:
        nest = stack.publish([ev.add_member(tenant, "group:top", "group:big")], mark=[0])
        if profile:
            with Profile(f"processor_nest_{tenant}", processor.pid, 200, rate=50):
                samples = wait_applied(processor, before_applied + 1, 3600, poll=0.05)
        else:
            samples = wait_applied(processor, before_applied + 1, 3600, poll=0.05)
    seconds = seconds_since_append(samples, nest.marks[0][2])
    rows = samples[-1][2] - before_rows
    processes = monitor.result.get("processes", {})
    cpu = {
        label: round(1_000_000 * float(entry["cpu_seconds"]) / rows, 1)
        for label, entry in processes.items()
        if entry.get("cpu_seconds") is not None and rows > 0
    }
    result: JsonDict = {
        "tenant": tenant,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        "cpu_us_per_row": cpu,
        "processor_peak_rss_mb": processes.get("processor", {}).get("peak_rss_mb"),
    }
    say(f"nest_probe: {json.dumps(result)}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the nests and print one line per run."""
    parser = argparse.ArgumentParser(prog="python -m bench.nest_probe")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--grants", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="py-spy the processor")
    args = parser.parse_args(argv)
    with Stack("nest", Options(profile=args.profile), with_api=False) as stack:
        for run in range(1, args.runs + 1):
            nest_once(stack, f"nest{run}", args.users, args.grants, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
