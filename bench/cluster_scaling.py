"""Cluster scaling: `python -m bench.cluster_scaling [--events N] [--seconds S]`.

Needs the single node (`make servers`) and the local cluster (`make cluster`). In one sitting,
for the single node (RF 1) and then the cluster (RF 3, quorum reads and writes, acks=all with
min ISR 2), in a fresh namespace each:

- ingest: 1 processor started and given 15 s to join its group, then N direct grants over 64
  tenants published and the processor timed from its first applied event to the last; again
  with 2 processors in one consumer group (N more grants);
- checks: a closed loop of single checks (concurrency 16, S seconds) against 1 API process,
  then against 2 API processes at once (one load each, throughputs added).

Prints the figures and the ratios (cluster / single node, 2 / 1) and saves
bench/results/cluster_scaling.json. The machine has 2 cores shared by every server, both
stacks and the load: the ratios say what replication and a second process cost or give here,
not on separate machines.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from typing import Any

import orjson

from bench import events as ev
from bench.common import REPO, JsonDict, say
from bench.loadgen import LoadSpec, run_load
from bench.stack import Api, Namespace, Processor, issue_token, wait_lag_zero

TENANTS = 64
GROUP_SETTLE_SECONDS = 15.0
USERS = 2000
RESULTS = REPO / "bench" / "results"


def _grants(start: int, count: int) -> list[JsonDict]:
    return [
        ev.grant(f"cs{i % TENANTS}", f"user:u{i % USERS}", f"doc:cs{i % TENANTS}/d{i}", "read")
        for i in range(start, start + count)
    ]


def _check_bodies(count: int, loaded: int) -> list[bytes]:
    bodies = []
    for k in range(count):
        i = (k * 7919) % loaded
        tenant = f"cs{i % TENANTS}"
        resource = f"doc:{tenant}/d{i}" if k % 2 == 0 else f"doc:{tenant}/none{i}"
        bodies.append(
            orjson.dumps(
                {
                    "tenant": tenant,
                    "principal": f"user:u{i % USERS}",
                    "resource": resource,
                    "action": "read",
                }
            )
        )
    return bodies


def _ingest(ns: Namespace, processors: int, start: int, count: int) -> JsonDict:
    """Start `processors` processors, let their group settle, publish `count` grants and time
    the processors from their first applied event to the last."""
    procs = [Processor(ns, f"cs-{ns.name}-p{k}-{start}") for k in range(processors)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_metrics()
    # Joining members rebalance the group: timed from before that, 2 processors would be
    # charged for a pause 1 processor never has.
    time.sleep(GROUP_SETTLE_SECONDS)
    published = ev.publish(ns.bootstrap_servers, ns.topic, _grants(start, count))
    first = done = None
    deadline = time.monotonic() + max(300.0, count / 20)
    while done is None:
        applied = sum(p.applied()[0] for p in procs)
        now = time.monotonic()
        if first is None and applied > 0:
            first = now
        if applied >= count:
            done = now
        if now > deadline:
            raise RuntimeError(f"{processors} processor(s) applied {applied} of {count}")
        time.sleep(0.2)
    wait_lag_zero(ns.settings(), 60)
    for proc in procs:
        proc.stop()
    assert first is not None
    seconds = max(done - first, 1e-3)
    out = {
        "processors": processors,
        "events": count,
        "publish_events_per_s": round(published.rate, 1),
        "apply_seconds": round(seconds, 2),
        "events_per_s": round(count / seconds, 1),
    }
    say(f"ingest with {processors} processor(s): {out['events_per_s']:,.0f} events/s")
    return out


def _checks(ns: Namespace, apis: int, seconds: float, loaded: int) -> JsonDict:
    """Closed-loop checks against `apis` API processes at once; throughputs added."""
    servers = [Api(ns, 1, name=f"cs-{ns.name}-api{k}") for k in range(apis)]
    for api in servers:
        api.start()
    try:
        for api in servers:
            api.wait_ready()
        token = issue_token()
        bodies = _check_bodies(4000, loaded)
        specs = [
            LoadSpec(
                url=api.url,
                path="/v1/check",
                bodies=bodies,
                token=token,
                mode="closed",
                concurrency=16,
                duration=seconds,
                warmup=1.0,
                label=f"{apis} API process(es), #{k}",
            )
            for k, api in enumerate(servers)
        ]
        with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
            runs = [r.summary() for r in pool.map(lambda s: run_load(s, 1), specs)]
    finally:
        for api in servers:
            api.stop()
    rps = sum(float(r["throughput_rps"]) for r in runs)
    p99 = max(float(r["latency_ms"]["p99"]) for r in runs)
    errors = sum(int(r["errors"]) for r in runs)
    say(f"checks with {apis} API process(es): {rps:,.0f} checks/s, p99 {p99} ms, errors {errors}")
    return {"apis": apis, "checks_per_s": round(rps, 1), "p99_ms": p99, "errors": errors}


def run_target(target: str, events: int, seconds: float) -> JsonDict:
    """Every measurement against one target; runs with that target's env in os.environ."""
    ns = Namespace.create("cs")
    ns.bootstrap()
    out: JsonDict = {"target": target, "namespace": ns.name}
    try:
        out["ingest"] = [_ingest(ns, 1, 0, events), _ingest(ns, 2, events, events)]
        out["checks"] = [_checks(ns, 1, seconds, 2 * events), _checks(ns, 2, seconds, 2 * events)]
    finally:
        ns.drop()
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main(argv: list[str] | None = None) -> int:
    """Run both targets in child processes (each with its own env) and compare."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_scaling", description=__doc__)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--target", choices=("single", "cluster"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.target:
        print(json.dumps(run_target(args.target, args.events, args.seconds)), flush=True)
        return 0
    from permstore.deploy.stack.cluster import cluster_from_env

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    single_env = {k: v for k, v in os.environ.items() if k not in cluster_from_env().app_env()}
    cluster_env = {**single_env, **cluster_from_env().app_env()}
    results: dict[str, Any] = {}
    for target, env in (("single", single_env), ("cluster", cluster_env)):
        say(f"cluster_scaling: {target}")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.cluster_scaling",
                "--target",
                target,
                "--events",
                str(args.events),
                "--seconds",
                str(args.seconds),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        sys.stderr.write(out.stderr[-3000:])
        if out.returncode != 0:
            raise SystemExit(f"{target} failed:\n{out.stdout[-2000:]}")
        results[target] = json.loads(out.stdout.strip().splitlines()[-1])
    s, c = results["single"], results["cluster"]
    ratios = {
        "cluster_over_single_ingest_1_processor": _ratio(
            c["ingest"][0]["events_per_s"], s["ingest"][0]["events_per_s"]
        ),
        "cluster_over_single_checks_1_api": _ratio(
            c["checks"][0]["checks_per_s"], s["checks"][0]["checks_per_s"]
        ),
        "cluster_2_over_1_processors": _ratio(
            c["ingest"][1]["events_per_s"], c["ingest"][0]["events_per_s"]
        ),
        "cluster_2_over_1_apis": _ratio(
            c["checks"][1]["checks_per_s"], c["checks"][0]["checks_per_s"]
        ),
        "single_2_over_1_processors": _ratio(
            s["ingest"][1]["events_per_s"], s["ingest"][0]["events_per_s"]
        ),
        "single_2_over_1_apis": _ratio(
            s["checks"][1]["checks_per_s"], s["checks"][0]["checks_per_s"]
        ),
    }
    report = {
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "events": args.events,
        "check_seconds": args.seconds,
        "load_average": os.getloadavg(),
        "note": "2 cores shared by both stacks, every server, the load and other users",
        "results": results,
        "ratios": ratios,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster_scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios, indent=2), flush=True)
    return 0


def run_with_cluster(argv: list[str] | None = None) -> int:
    """`make bench`'s cluster step: start the local cluster unless it runs, measure, and stop
    it again if this step started it (its 3.3-3.9 GB would weigh on the next scenarios)."""
    cluster = [sys.executable, str(REPO / "deploy" / "cluster.py")]
    running = subprocess.run([*cluster, "status"], capture_output=True, check=False).returncode
    if running != 0:
        say("cluster_scaling: starting the local cluster (deploy/cluster.py up)")
        subprocess.run([*cluster, "up"], check=True, timeout=1800)
    try:
        return main(argv)
    finally:
        if running != 0:
            say("cluster_scaling: stopping the cluster this step started")
            subprocess.run([*cluster, "down"], check=False, timeout=600)


if __name__ == "__main__":
    raise SystemExit(main())
