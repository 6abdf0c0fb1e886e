"""S4 rebuild: events/s replaying a whole topic into fresh, empty views.

The topic is filled first (100,000 events quick, 1,000,000 full; 50 tenants, each with the
mixed history of bench/workloads.py) while no processor runs. Then a processor starts on the
empty generation and replays everything, which is what a rebuild into a new generation does
(`permstore` ops rebuild runs the same processor, pinned to the new generation). Reported:
events/s and view rows/s from the processor's counters between 5 % applied and done, the
wall time including process start and group join, and the processor's peak RSS (it holds
every tenant's state in its cache).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from bench.common import JsonDict, say
from bench.monitor import ResourceMonitor
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack, steady_rate
from bench.stack import wait_lag_zero
from bench.workloads import mixed_history

TENANTS = 50


def interleaved(total: int) -> Iterator[JsonDict]:
    """TENANTS mixed histories, interleaved as independent upstream systems would publish."""
    per = total // TENANTS
    streams = [mixed_history(f"rb{t}", per, seed=t) for t in range(TENANTS)]
    for chunk in itertools.zip_longest(*streams):
        yield from (e for e in chunk if e is not None)


def run(options: Options) -> ScenarioReport:
    """Run S4 and return its report."""
    total = options.pick(100_000, 1_000_000)
    total -= total % TENANTS
    bound = options.pick(900.0, 3600.0)
    report = ScenarioReport(
        "s4_rebuild",
        "S4 rebuild: replaying a topic into fresh views",
        options.mode,
        config={"events": total, "tenants": TENANTS, "bound_s": bound},
    )
    with Stack("s4", options, with_api=False, with_processor=False) as stack:
        published = stack.publish(interleaved(total))
        say(f"s4: published {published.count:,} events at {published.rate:,.0f}/s")
        started = time.monotonic()
        stack.start_processor()
        with ResourceMonitor(stack.server_pids()) as monitor:
            samples = stack.follow(published.count, bound, poll=0.5, partial=True)
        samples.insert(0, (started, 0.0, 0.0))
        result = steady_rate(samples, published.count)
        if result["complete"]:
            wait_lag_zero(stack.namespace.settings(), 120)
        result.update(
            events=published.count,
            publish_events_per_s=round(published.rate, 1),
            wall_incl_start_s=round(samples[-1][0] - started, 2),
            server=monitor.result,
            curve=[(round(t - started, 2), a, c) for t, a, c in samples[1:]],
            processor_restarts=stack.processor_restarts,
        )
    say(f"s4: {result['events_per_s']:,.0f} events/s, {result['view_rows_per_s']:,.0f} rows/s")
    report.results = result
    processor_stats = result["server"]["processes"].get("processor", {})
    note = f"{published.count:,} events, {TENANTS} tenants" + (
        "" if result["complete"] else ", bound reached"
    )
    report.rows = [
        Row("rebuild events/s", result["events_per_s"], "events/s", note=note),
        Row("rebuild view rows/s", result["view_rows_per_s"], "rows/s"),
        Row("rebuild wall time incl. start", result["wall_incl_start_s"], "s"),
        Row("processor peak RSS during rebuild", processor_stats.get("peak_rss_mb"), "MiB"),
    ]
    report.plots.append(plot(result))
    return report


def plot(result: JsonDict) -> str:
    """Events applied and view rows over time."""
    fig, ax = figure(1)
    curve = result["curve"]
    ax.plot([c[0] for c in curve], [c[1] for c in curve], label="events applied")
    ax.plot([c[0] for c in curve], [c[2] for c in curve], label="view rows written")
    ax.set_xlabel("seconds since processor start")
    ax.set_ylabel("count")
    ax.set_title(f"S4 rebuild: {result['events_per_s']:,.0f} events/s")
    ax.legend()
    return save_figure(fig, "s4_rebuild")
