"""Closed-loop HTTP load with wrk, when the machine has it (Debian package `wrk`).

Our Python generator (bench/loadgen.py) spends ~4 ms of client CPU per request and tops out
near 270 requests/s here, on the same two cores as the servers; wrk (C, keep-alive, one
thread) spends a few percent of that, so closed-loop figures measure the API instead of the
client. Open-loop runs stay with the Python generator (wrk has no fixed-rate mode).
`PERMSTORE_BENCH_CLIENT=python` forces the Python generator everywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.loadgen import LoadOutcome, LoadSpec, run_load
from bench.monitor import ResourceMonitor

SCRIPT = Path(__file__).with_name("wrk_bodies.lua")
MARK = "PERMSTORE_WRK "


def wrk_available() -> bool:
    """True when wrk is on PATH and the Python generator is not forced."""
    return os.environ.get("PERMSTORE_BENCH_CLIENT", "auto") != "python" and bool(
        shutil.which("wrk")
    )


def children_cpu_seconds() -> float:
    """CPU used so far by waited-for child processes (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(spec: LoadSpec, monitor_pids: dict[str, int] | None = None) -> LoadOutcome:
    """A closed-loop run of spec with wrk: warm-up run, then the measured window."""
    assert spec.mode == "closed", "wrk drives closed loops only"
    with tempfile.NamedTemporaryFile("wb", suffix=".bodies") as bodies:
        bodies.write(b"\n".join(spec.bodies))
        bodies.flush()
        env = dict(os.environ, PERMSTORE_WRK_BODIES=bodies.name, PERMSTORE_WRK_TOKEN=spec.token)
        command = [
            "wrk",
            "-t1",
            f"-c{spec.concurrency}",
            f"--timeout={int(spec.timeout)}s",
            "-s",
            str(SCRIPT),
        ]
        url = spec.url + spec.path
        if spec.warmup > 0:
            subprocess.run(
                [*command, f"-d{spec.warmup:.0f}s", url],
                env=env,
                capture_output=True,
                check=True,
                timeout=spec.warmup + spec.timeout + 30,
            )
        monitor = ResourceMonitor(monitor_pids or {})
        cpu_before = children_cpu_seconds()
        with monitor:
            done = subprocess.run(
                [*command, f"-d{spec.duration:.0f}s", url],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=spec.duration + spec.timeout + 30,
            )
        client_cpu = children_cpu_seconds() - cpu_before
    line = next(x for x in done.stdout.splitlines() if x.startswith(MARK))
    figures = json.loads(line[len(MARK) :])
    window = figures["duration_us"] / 1e6
    failed = sum(figures[k] for k in ("non_2xx", "connect", "read", "write", "timeout"))
    return LoadOutcome(
        spec=spec,
        processes=1,
        latencies=[],
        ok=max(0, figures["requests"] - figures["non_2xx"]),
        errors=failed,
        dropped=0,
        allowed=-1,
        statuses={"non_2xx": figures["non_2xx"]} if figures["non_2xx"] else {},
        window=window,
        client_cpu_percent=100 * client_cpu / max(window, 1e-9),
        error_sample="",
        server=monitor.result,
        client="wrk",
        reported_latency_ms={
            "count": figures["requests"],
            "p50": round(figures["p50_us"] / 1000, 3),
            "p95": round(figures["p95_us"] / 1000, 3),
            "p99": round(figures["p99_us"] / 1000, 3),
            "max": round(figures["max_us"] / 1000, 3),
            "mean": round(figures["mean_us"] / 1000, 3),
        },
    )


def run_best(
    spec: LoadSpec, processes: int, monitor_pids: dict[str, int] | None = None
) -> LoadOutcome:
    """wrk for a closed loop when available, else the Python generator in `processes`."""
    if spec.mode == "closed" and wrk_available():
        return run_wrk(spec, monitor_pids)
    return run_load(spec, processes, monitor_pids)
