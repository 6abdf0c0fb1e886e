"""Scaling: check latency against data size and against group nesting depth.

Size: direct grants are added in steps (10k, 30k, 100k quick; then 300k and 1M full) over
4 tenants and 5,000 users, so each user's partition grows with the data (2 to 200 rows);
after each step, once Cassandra's CPU has settled (its flushes and compactions of the step are
done), a closed loop of single checks (concurrency 16) runs, half on granted (user, document)
pairs and half on misses.

Depth: for each depth D (1, 10, 100, 1,000) a tenant holds a chain of D nested groups, a
grant to the outermost group and a user in the innermost; checks of that user run in a closed
loop (concurrency 8). The views are denormalized, so a check reads the same few rows at any
depth: the plot shows whether that holds. The API runs with its view cache off here, so
every check reads Cassandra (with chains: a second read for reasons held through a group).
"""

from __future__ import annotations

import random

import httpx
import orjson

from bench import events as ev
from bench.common import JsonDict, say
from bench.loadgen import LoadSpec
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack

TENANTS, USERS = 4, 5000
DEPTHS = [1, 10, 100, 1000]


def grant_event(i: int) -> JsonDict:
    """The i-th direct grant of the size series."""
    tenant = f"z{i % TENANTS}"
    return ev.grant(tenant, f"user:u{i % USERS}", f"doc:{tenant}/f{i % 100}/d{i}", "read")


def check_body(i: int, hit: bool) -> bytes:
    """A check of the i-th grant (hit) or of a document nobody holds (miss)."""
    tenant = f"z{i % TENANTS}"
    resource = f"doc:{tenant}/f{i % 100}/d{i}" if hit else f"doc:{tenant}/f{i % 100}/none{i}"
    return orjson.dumps(
        {
            "tenant": tenant,
            "principal": f"user:u{i % USERS}",
            "resource": resource,
            "action": "read",
        }
    )


def chain_events(depth: int) -> list[JsonDict]:
    """A chain of `depth` groups built outermost first, its grant, and the user joining."""
    tenant = f"dp{depth}"
    out = [ev.add_member(tenant, f"group:c{k + 1}", f"group:c{k}") for k in range(depth - 1, 0, -1)]
    out.append(ev.grant(tenant, f"group:c{depth}", f"doc:{tenant}/deep", "read"))
    out.append(ev.add_member(tenant, "group:c1", "user:deep"))
    return out


def run(options: Options) -> ScenarioReport:
    """Run the scaling series and return the report."""
    sizes = options.pick([10_000, 30_000, 100_000], [10_000, 30_000, 100_000, 300_000, 1_000_000])
    duration = options.pick(5.0, 15.0)
    report = ScenarioReport(
        "scaling",
        "Scaling: check latency against data size and group depth",
        options.mode,
        config={
            "sizes": sizes,
            "depths": DEPTHS,
            "tenants": TENANTS,
            "users": USERS,
            "duration_s": duration,
            "api_workers": options.workers,
        },
    )
    rng = random.Random(3)
    by_size: list[JsonDict] = []
    by_depth: list[JsonDict] = []
    # The view cache would answer repeated checks without reading: measure the reads themselves.
    with Stack("sc", options, api_env={"PERMSTORE_VIEW_CACHE_ROWS": "0"}) as stack:
        loaded = 0
        for size in sizes:
            step = stack.load([grant_event(i) for i in range(loaded, size)], f"size {size:,}")
            loaded = size
            bodies = [check_body(rng.randrange(loaded), rng.random() < 0.5) for _ in range(5000)]
            spec = LoadSpec(
                url=stack.url,
                path="/v1/check",
                bodies=bodies,
                token=stack.token,
                mode="closed",
                concurrency=16,
                duration=duration,
                warmup=1.0,
                label=f"{size:,} grants",
            )
            # Reads measured while Cassandra still flushes and compacts the load would show the
            # write backlog, not the data size.
            settled = stack.settle()
            outcome = stack.run_load(spec).summary()
            by_size.append({"grants": size, "load": step, "settle_s": settled, "run": outcome})
        chains = [e for depth in DEPTHS for e in chain_events(depth)]
        report.results["depth_load"] = stack.load(chains, "group chains")
        for depth in DEPTHS:
            body = orjson.dumps(
                {
                    "tenant": f"dp{depth}",
                    "principal": "user:deep",
                    "resource": f"doc:dp{depth}/deep",
                    "action": "read",
                }
            )
            spec = LoadSpec(
                url=stack.url,
                path="/v1/check",
                bodies=[body],
                token=stack.token,
                mode="closed",
                concurrency=8,
                duration=max(3.0, duration - 1),
                warmup=1.0,
                label=f"depth {depth}",
            )
            answer = httpx.post(
                stack.url + "/v1/check",
                content=body,
                headers={
                    "authorization": f"Bearer {stack.token}",
                    "content-type": "application/json",
                },
                timeout=30,
            ).json()
            chain = answer["reasons"][0]["via_chain"] if answer.get("allowed") else None
            if chain is None or len(chain) != depth:
                say(f"scaling: depth {depth}: unexpected answer {str(answer)[:200]}")
            outcome = stack.run_load(spec).summary()
            by_depth.append(
                {
                    "depth": depth,
                    "allowed": bool(answer.get("allowed")),
                    "chain_length": len(chain or ()),
                    "run": outcome,
                }
            )
        report.results["processor_restarts"] = stack.processor_restarts
    report.results["by_size"] = by_size
    report.results["by_depth"] = by_depth
    for item in by_size:
        lat = item["run"]["latency_ms"]
        report.rows.append(
            Row(
                f"check p99 at {item['grants']:,} grants",
                lat["p99"],
                "ms",
                note=f"p50 {lat['p50']} ms, {item['run']['throughput_rps']:,.0f} checks/s, c=16",
            )
        )
    for item in by_depth:
        lat = item["run"]["latency_ms"]
        report.rows.append(
            Row(
                f"check p99 at group depth {item['depth']:,}",
                lat["p99"],
                "ms",
                note=(
                    f"p50 {lat['p50']} ms, allowed {item['allowed']}, "
                    f"chain of {item['chain_length']:,} groups, c=8"
                ),
            )
        )
    report.plots.append(plot_series(by_size, "grants", "grants in the store", "scaling_size"))
    report.plots.append(plot_series(by_depth, "depth", "group nesting depth", "scaling_depth"))
    return report


def plot_series(items: list[JsonDict], key: str, xlabel: str, name: str) -> str:
    """Latency percentiles (and throughput) against a size or depth."""
    fig, ax = figure(1)
    xs = [item[key] for item in items]
    for pct, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax.plot(xs, [item["run"]["latency_ms"][pct] for item in items], style, label=pct)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("check latency (ms)")
    twin = ax.twinx()
    twin.plot(xs, [item["run"]["throughput_rps"] for item in items], "x--", color="grey")
    twin.set_ylabel("checks/s (grey)")
    twin.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    ax.set_title(f"Check latency against {xlabel}")
    ax.legend(loc="upper left")
    return save_figure(fig, name)
