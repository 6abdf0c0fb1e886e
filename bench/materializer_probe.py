"""Direct-grant catch-ups for A/B work on the processor: `python -m bench.materializer_probe`.

Each run publishes N fresh direct grants (S3's workload) with the processor stopped, then
times a fresh processor's catch-up and prints events/s with the CPU each server spent per
event. Alternate two builds run after run to compare them as ratios within one sitting.
"""

from __future__ import annotations

import argparse

from bench.common import say
from bench.scenario import Options, Stack
from bench.scenarios.s3_materializer import catch_up, direct_events


def cpu_ms_per_event(server: dict[str, object], label: str, events: float) -> float | None:
    """Milliseconds of CPU one watched process spent per applied event."""
    processes = server.get("processes")
    if not isinstance(processes, dict):
        return None
    entry = processes.get(label)
    if not isinstance(entry, dict) or entry.get("cpu_seconds") is None or events <= 0:
        return None
    return round(1000 * float(entry["cpu_seconds"]) / events, 3)


def main(argv: list[str] | None = None) -> int:
    """Run the catch-ups and print one line per run."""
    parser = argparse.ArgumentParser(prog="python -m bench.materializer_probe")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the processor")
    args = parser.parse_args(argv)
    with Stack("probe", Options(profile=args.profile), with_api=False) as stack:
        for run in range(1, args.runs + 1):
            result = catch_up(
                stack,
                "direct",
                direct_events(args.events, run * args.events),
                300.0,
                args.profile and run == args.runs,
            )
            server = result["server"]
            applied = float(result["applied"])
            say(
                f"probe run {run}: {result['events_per_s']:,.0f} events/s; CPU per event "
                f"processor {cpu_ms_per_event(server, 'processor', applied)} ms, "
                f"cassandra {cpu_ms_per_event(server, 'cassandra', applied)} ms, "
                f"kafka {cpu_ms_per_event(server, 'kafka', applied)} ms"
            )
            if "profile" in result:
                say(f"profile: {result['profile']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
