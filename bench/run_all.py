"""Run the benchmark scenarios: `python -m bench.run_all [--quick|--full] [--only s1,s3]`.

Needs Kafka and Cassandra up (`make servers` or `python deploy/localstack.py up`). Each
scenario creates its own topic, keyspace and consumer group, starts its own processor and API,
and drops its namespace at the end. Results: bench/results/*.json, *.png and summary.md.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

from bench.common import REPO, say
from bench.report import ScenarioReport, write_summary
from bench.scenario import Options
from bench.wrk import wrk_available

SCENARIOS: dict[str, str] = {
    "s1": "bench.scenarios.s1_checks",
    "s2": "bench.scenarios.s2_propagation",
    "s3": "bench.scenarios.s3_materializer",
    "s4": "bench.scenarios.s4_rebuild",
    "s5": "bench.scenarios.s5_audit",
    "scaling": "bench.scenarios.scaling",
    "console": "bench.scenarios.console_pages",
    "s6": "bench.scenarios.s6_fairness",
    "changes": "bench.scenarios.changes_stream",
    "s7": "bench.scenarios.s7_cached_checks",
}
# Steps with their own stack and report: the scaling of the local 3-node cluster against the
# single node (bench/cluster_scaling.py; it starts and stops the cluster itself).
STEPS = {"cluster": "bench.cluster_scaling"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short runs, small data (default)")
    size.add_argument("--full", action="store_true", help="longer runs, the issue's full sizes")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios to run (default all): {', '.join([*SCENARIOS, *STEPS])}",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help=(
            "uvicorn workers of the API (1 here: on two cores shared with Kafka, Cassandra and "
            "the load, a second worker adds contention: single-check p99 7 ms with 1, 22 ms with 2)"
        ),
    )
    parser.add_argument("--load-procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--keep-data", action="store_true", help="keep each scenario's namespace")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles of an API worker (S1) and the processor (S3), and "
        "bench.profile_check (cProfile of the check route in-process)",
    )
    return parser.parse_args(argv)


def servers_up() -> bool:
    """True when localstack reports Kafka and Cassandra ready."""
    status = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "localstack.py"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = status.stdout
    return status.returncode == 0 and text.count("ready") >= 2 and "not ready" not in text


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; a failing scenario is reported and the others still run."""
    args = parse_args(argv)
    options = Options(
        full=bool(args.full),
        workers=max(1, args.workers),
        load_procs=max(1, args.load_procs),
        keep_data=bool(args.keep_data),
        profile=bool(args.profile),
    )
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or [*SCENARIOS, *STEPS]
    unknown = [s for s in chosen if s not in SCENARIOS and s not in STEPS]
    if unknown:
        say(f"unknown scenarios: {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
        return 2
    if not servers_up():
        say("Kafka and Cassandra are not both ready: run `make servers` (or `make run`) first")
        return 2
    say(f"mode {options.mode}, API workers {options.workers}, scenarios {', '.join(chosen)}")
    if not wrk_available():
        say(
            "wrk not found: closed loops use the Python generator, which needs more CPU per "
            "request than the API and so understates it (Debian: apt-get install wrk)"
        )
    failed: list[str] = []
    for key in chosen:
        started = time.monotonic()
        if key in STEPS:
            step: Callable[[list[str]], int] = importlib.import_module(STEPS[key]).run_with_cluster
            try:
                code = step([] if options.full else ["--events", "3000", "--seconds", "6"])
            except (Exception, SystemExit) as exc:
                say(f"{key}: {exc}")
                code = 1
            if code != 0:
                failed.append(key)
            say(f"{key}: {'FAILED' if code else 'done'} in {time.monotonic() - started:.0f}s")
            continue
        module = importlib.import_module(SCENARIOS[key])
        run: Callable[[Options], ScenarioReport] = module.run
        try:
            report = run(options)
            path = report.write()
            say(f"{key}: done in {time.monotonic() - started:.0f}s -> {path.relative_to(REPO)}")
        except Exception:
            failed.append(key)
            say(f"{key}: FAILED after {time.monotonic() - started:.0f}s")
            traceback.print_exc()
    if options.profile:
        from bench import profile_check

        try:
            profile_check.main([])
        except Exception:
            failed.append("profile_check")
            traceback.print_exc()
    summary = write_summary()
    say(f"summary: {summary.relative_to(REPO)}")
    if failed:
        say(f"failed scenarios: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
