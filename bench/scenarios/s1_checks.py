"""S1 checks: single checks and batches of 100 on a realistic tenant.

One tenant with 2,000 users, 100 groups nested as a 3-ary tree (depth 4), 500 documents in 20
folders, three roles, a type wildcard (`doc:*`), folder wildcards (`doc:s1/fN/*`) granted to
groups, and 1,000 direct grants to users on single documents. Checks pick a random user,
document and action, so answers mix allow (through groups, roles, wildcards, direct grants)
and deny.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from typing import Any

import httpx
import orjson

from bench import events as ev
from bench.common import Deadline, JsonDict, say
from bench.loadgen import LoadSpec
from bench.profiling import Profile
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack
from bench.stack import BenchProcess
from bench.wrk import run_best, wrk_available
from permstore.deploy.harness import free_port

TENANT = "s1"
USERS, GROUPS, FOLDERS, DOCS_PER_FOLDER = 2000, 100, 20, 25
ACTIONS = ["read", "write", "comment", "delete", "share", "list"]
SINGLE_FLOOR_RPS, SINGLE_FLOOR_P99_MS, BATCH_FLOOR_DPS = 2000.0, 20.0, 20000.0
OPEN_HEADROOM = 1.5
CACHE_WARMUP_S = 45.0
"""Per API worker, the first closed-loop run (and a batch warm-up, a third of it) lasts this long,
so that each worker's view cache has seen the 20,000 distinct checks (and the 300 batches) once;
the cache-off series shows the cold path."""


def dataset(rng: random.Random) -> list[JsonDict]:
    """The tenant's history, roles first, then the group tree, grants and memberships."""
    out = [
        ev.define_role(TENANT, "viewer", ["read"]),
        ev.define_role(TENANT, "editor", ["read", "write", "comment"]),
        ev.define_role(TENANT, "owner", ["read", "write", "comment", "delete", "share"]),
    ]
    out += [
        ev.add_member(TENANT, f"group:team-{(i - 1) // 3}", f"group:team-{i}")
        for i in range(1, GROUPS)
    ]
    out.append(ev.grant(TENANT, "group:team-0", "doc:*", "list"))
    out += [
        ev.grant(TENANT, f"group:team-{i}", f"doc:{TENANT}/f{i % FOLDERS}/*", "role:viewer")
        for i in range(GROUPS)
    ]
    out += [
        ev.grant(
            TENANT, f"group:team-{i}", f"doc:{TENANT}/f{(i * 7 + 3) % FOLDERS}/*", "role:editor"
        )
        for i in range(0, GROUPS, 5)
    ]
    for user in range(USERS):
        out.append(
            ev.add_member(TENANT, f"group:team-{rng.randrange(33, GROUPS)}", f"user:u{user}")
        )
        if user % 10 == 0:
            out.append(
                ev.add_member(TENANT, f"group:team-{rng.randrange(1, GROUPS)}", f"user:u{user}")
            )
    out += [
        ev.grant(
            TENANT,
            f"user:u{rng.randrange(USERS)}",
            f"doc:{TENANT}/f{rng.randrange(FOLDERS)}/d{rng.randrange(DOCS_PER_FOLDER)}",
            rng.choice(["write", "role:owner"]),
        )
        for _ in range(1000)
    ]
    return out


def random_check(rng: random.Random) -> dict[str, str]:
    """A random (user, document, action) of the tenant."""
    return {
        "principal": f"user:u{rng.randrange(USERS)}",
        "resource": f"doc:{TENANT}/f{rng.randrange(FOLDERS)}/d{rng.randrange(DOCS_PER_FOLDER)}",
        "action": rng.choice(ACTIONS),
    }


def single_bodies(rng: random.Random, count: int) -> list[bytes]:
    """POST /v1/check bodies."""
    return [orjson.dumps({"tenant": TENANT, **random_check(rng)}) for _ in range(count)]


def batch_bodies(rng: random.Random, count: int, size: int = 100) -> list[bytes]:
    """POST /v1/check/batch bodies of `size` checks each."""
    return [
        orjson.dumps({"tenant": TENANT, "checks": [random_check(rng) for _ in range(size)]})
        for _ in range(count)
    ]


def run(options: Options) -> ScenarioReport:
    """Run S1 and return its report."""
    rng = random.Random(1)
    duration = options.pick(8.0, 20.0)
    warmup = options.pick(2.0, 3.0)
    closed = options.pick([8, 16], [1, 8, 16, 32, 64])
    rates = options.pick([500.0, 1000.0, 2000.0], [500.0, 1000.0, 2000.0, 3000.0, 4000.0])
    batch_conc = options.pick([2, 8], [1, 4, 8, 16])
    report = ScenarioReport(
        "s1_checks",
        "S1 checks: single and batch throughput and latency",
        options.mode,
        config={
            "api_workers": options.workers,
            "load_processes": options.load_procs,
            "duration_s": duration,
            "warmup_s": warmup,
            "dataset": {
                "users": USERS,
                "groups": GROUPS,
                "group_nesting": "3-ary tree, depth 4",
                "documents": FOLDERS * DOCS_PER_FOLDER,
                "folders": FOLDERS,
                "direct_grants": 1000,
                "wildcards": ["doc:*", "doc:s1/fN/*"],
            },
        },
    )
    singles = single_bodies(rng, 20_000)
    batches = batch_bodies(rng, 300)
    report.results["load_generator_ceiling"] = calibrate(options, singles, duration, warmup)
    with Stack("s1", options) as stack:
        history = dataset(rng)
        report.results["load"] = stack.load(history, "S1 dataset")
        runs: list[JsonDict] = []

        def spec(**kwargs: Any) -> LoadSpec:
            return LoadSpec(
                url=stack.url, token=stack.token, duration=duration, warmup=warmup, **kwargs
            )

        for concurrency in closed:
            label = f"single closed c={concurrency}"
            load = spec(
                path="/v1/check",
                bodies=singles,
                mode="closed",
                concurrency=concurrency,
                label=label,
            )
            if concurrency == closed[0]:
                load = dataclasses.replace(
                    load, warmup=max(warmup, CACHE_WARMUP_S * options.workers)
                )
            if options.profile and concurrency == closed[-1]:
                pids = stack.server_pids()
                with Profile("api_check", pids["api-1"], warmup + duration) as profile:
                    outcome = stack.run_load(load)
                report.results["profile_api_check"] = profile.result
            else:
                outcome = stack.run_load(load)
            runs.append(outcome.summary() | {"kind": "single"})
        # Open loop at half the closed-loop capacity (latency under moderate load), and at each
        # configured rate up to 1.5x that capacity; offering more only builds queues, so such
        # rates are recorded as not offered (and fail their floor) instead of burning minutes.
        capacity = max(r["throughput_rps"] for r in runs)
        half = max(10.0, round(capacity / 2, -1))
        offered = sorted({half, *(r for r in rates if r <= OPEN_HEADROOM * capacity)})
        for rate in sorted({*rates, half}):
            label = f"single open {rate:.0f}/s"
            if rate not in offered:
                runs.append(
                    {"kind": "single", "mode": "open", "label": label, "target_rate": rate}
                    | {"skipped": f"closed-loop capacity {capacity:,.0f}/s"}
                )
                continue
            load = spec(path="/v1/check", bodies=singles, mode="open", rate=rate, label=label)
            runs.append(stack.run_load(load).summary() | {"kind": "single"})
        # Warm every worker's cache with batches at twice the highest concurrency: at c = 2 the
        # kernel can hand both connections to one worker, leaving the other cold for c = 8.
        warm_batches = spec(
            path="/v1/check/batch",
            bodies=batches,
            mode="closed",
            concurrency=2 * max(batch_conc),
            label="batch100 cache warm-up (not reported)",
        )
        stack.run_load(
            dataclasses.replace(warm_batches, duration=CACHE_WARMUP_S * options.workers / 3)
        )
        for concurrency in batch_conc:
            label = f"batch100 closed c={concurrency}"
            load = spec(
                path="/v1/check/batch",
                bodies=batches,
                mode="closed",
                concurrency=concurrency,
                decisions_per_request=100,
                label=label,
            )
            runs.append(stack.run_load(load).summary() | {"kind": "batch"})
        # The same loads with the view cache off: every check reads Cassandra.
        stack.restart_api(PERMSTORE_VIEW_CACHE_ROWS="0")
        for kind, path, bodies, concurrency, per_request in (
            ("single", "/v1/check", singles, closed[0], 1),
            ("batch", "/v1/check/batch", batches, batch_conc[-1], 100),
        ):
            load = spec(
                path=path,
                bodies=bodies,
                mode="closed",
                concurrency=concurrency,
                decisions_per_request=per_request,
                label=f"{kind} cache off closed c={concurrency}",
            )
            runs.append(stack.run_load(load).summary() | {"kind": kind, "cache": "off"})
        report.results["runs"] = runs
        report.config["load_client"] = "wrk (closed loops)" if wrk_available() else "python"
        report.results["processor_restarts"] = stack.processor_restarts
    summarise(report, runs)
    report.plots.append(plot(runs))
    return report


def calibrate(
    options: Options, bodies: list[bytes], duration: float, warmup: float
) -> list[JsonDict]:
    """The load generator against a do-nothing app (bench/noop_app.py) on the same machine:
    the most this client can measure here, whatever the API does."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.noop_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(options.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = BenchProcess("noop-api", command, dict(os.environ))
    server.start()
    results: list[JsonDict] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = Deadline.after(60)
        while not deadline.passed():
            try:
                httpx.post(f"{url}/v1/check", content=b"{}", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        for concurrency in (8, 32):
            spec = LoadSpec(
                url=url,
                path="/v1/check",
                bodies=bodies,
                token="noop",
                mode="closed",
                concurrency=concurrency,
                duration=min(duration, 5.0),
                warmup=min(warmup, 1.0),
                label=f"no-op server closed c={concurrency}",
            )
            summary = run_best(spec, options.load_procs).summary()
            say(
                f"s1: load generator ceiling (no-op server, c={concurrency}): "
                f"{summary['throughput_rps']:,.0f} req/s, "
                f"client CPU {summary['client_cpu_percent']}%"
            )
            results.append(summary)
    finally:
        server.stop()
    return results


def summarise(report: ScenarioReport, runs: list[JsonDict]) -> None:
    """Summary rows: best closed-loop single and batch runs, and the open-loop floor rate."""
    cold = [r for r in runs if r.get("cache") == "off"]
    runs = [r for r in runs if r.get("cache") != "off"]
    singles = [r for r in runs if r["kind"] == "single" and r["mode"] == "closed"]
    opened = [r for r in runs if r["kind"] == "single" and r["mode"] == "open"]
    batch = [r for r in runs if r["kind"] == "batch"]
    for r in cold:
        what = "single checks" if r["kind"] == "single" else "batch-of-100 decisions"
        note = f"view cache off, closed loop c={r['concurrency']}"
        report.rows += [
            Row(f"{what}, cache off", r["decisions_per_s"], "decisions/s", note=note),
            Row(f"{what}, cache off, request p99", r["latency_ms"]["p99"], "ms", note=note),
        ]
    if singles:
        best = max(singles, key=lambda r: r["throughput_rps"])
        lat = best["latency_ms"]
        note = f"closed loop c={best['concurrency']}"
        report.rows += [
            Row(
                "single check throughput",
                best["throughput_rps"],
                "checks/s",
                ">= 2,000/s",
                best["throughput_rps"] >= SINGLE_FLOOR_RPS,
                note,
            ),
            Row("single check p50", lat["p50"], "ms", note=note),
            Row("single check p95", lat["p95"], "ms", note=note),
            Row(
                "single check p99",
                lat["p99"],
                "ms",
                "<= 20 ms",
                lat["p99"] is not None and lat["p99"] <= SINGLE_FLOOR_P99_MS,
                note,
            ),
        ]
    for r in opened:
        target = r["target_rate"]
        if "skipped" in r:
            report.rows.append(
                Row(
                    f"single check p99 at {target:,.0f}/s offered",
                    None,
                    "ms",
                    "<= 20 ms at 2,000/s" if target == SINGLE_FLOOR_RPS else "",
                    False if target == SINGLE_FLOOR_RPS else None,
                    f"not offered: {r['skipped']}",
                )
            )
            continue
        achieved = r["throughput_rps"]
        p99 = r["latency_ms"]["p99"]
        ok = achieved >= 0.95 * target and p99 is not None and p99 <= SINGLE_FLOOR_P99_MS
        floor = "<= 20 ms at 2,000/s" if target == SINGLE_FLOOR_RPS else ""
        report.rows.append(
            Row(
                f"single check p99 at {target:,.0f}/s offered",
                p99,
                "ms",
                floor,
                ok if floor else None,
                f"open loop, achieved {achieved:,.0f}/s",
            )
        )
    ceiling = report.results.get("load_generator_ceiling") or []
    if ceiling:
        top = max(ceiling, key=lambda r: r["throughput_rps"])
        report.rows.append(
            Row(
                "load generator ceiling (no-op server)",
                top["throughput_rps"],
                "req/s",
                note=f"closed loop c={top['concurrency']}, client CPU {top['client_cpu_percent']}%",
            )
        )
    if batch:
        best = max(batch, key=lambda r: r["decisions_per_s"])
        report.rows += [
            Row(
                "batch-of-100 decisions",
                best["decisions_per_s"],
                "decisions/s",
                ">= 20,000/s",
                best["decisions_per_s"] >= BATCH_FLOOR_DPS,
                f"closed loop c={best['concurrency']}",
            ),
            Row(
                "batch-of-100 request p99",
                best["latency_ms"]["p99"],
                "ms",
                note=f"closed loop c={best['concurrency']}",
            ),
        ]


def plot(runs: list[JsonDict]) -> str:
    """Open-loop latency against rate, and closed-loop throughput per run."""
    fig, (left, right) = figure(2)
    opened = [r for r in runs if r["mode"] == "open" and "skipped" not in r]
    if opened:
        xs = [r["target_rate"] for r in opened]
        for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
            left.plot(xs, [r["latency_ms"][key] for r in opened], style, label=key)
        for r in opened:
            left.annotate(
                f"{r['throughput_rps']:,.0f}/s",
                (r["target_rate"], r["latency_ms"]["p99"] or 0),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 6),
            )
        left.axhline(SINGLE_FLOOR_P99_MS, color="grey", linestyle="--", label="p99 floor")
        left.set_yscale("log")
        left.set_xlabel("offered checks/s (open loop; labels: achieved)")
        left.set_ylabel("latency (ms)")
        left.set_title("Single checks, open loop")
        left.legend()
    closed = [r for r in runs if r["mode"] == "closed"]
    labels = [r["label"].replace(" closed", "") for r in closed]
    values = [r["decisions_per_s"] for r in closed]
    bars = right.bar(
        range(len(closed)), values, color=["C0" if r["kind"] == "single" else "C2" for r in closed]
    )
    for bar, r in zip(bars, closed, strict=True):
        right.annotate(
            f"p99 {r['latency_ms']['p99']} ms",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            fontsize=7,
            textcoords="offset points",
            xytext=(0, 3),
        )
    right.set_xticks(range(len(closed)), labels, rotation=20, fontsize=8)
    right.set_ylabel("decisions/s")
    right.set_title("Closed loop throughput (single vs batch of 100)")
    return save_figure(fig, "s1_checks")
