"""S5 audit: latency of point-in-time checks (GET /v1/tenants/{t}/audit/check).

One tenant gets the mixed history of bench/workloads.py (100,000 events quick, 1,000,000
full), published in ten equal phases one second apart, so that the end of each phase is a
distinct recorded time. After the processor has applied everything (writing its snapshots
along the way), each past time, the end of phases 1, 3, 5, 7 and 10 (plus "now"), is asked
several times in a row. The answer folds the newest snapshot at or before that time plus
the log after it, so latency follows the events replayed (reported by the API).
"""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx

from bench.common import Deadline, JsonDict, latency_summary_ms, rfc3339_ms, say, utc_now
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack
from bench.workloads import mixed_history

TENANT = "audit"
PHASES = 10
ASK_AFTER_PHASES = [1, 3, 5, 7, 10]
PRINCIPAL, RESOURCE, ACTION = "user:u1", f"doc:{TENANT}/f1/d1", "read"


def run(options: Options) -> ScenarioReport:
    """Run S5 and return its report."""
    total = options.pick(100_000, 1_000_000)
    reps = options.pick(5, 20)
    budget = options.pick(60.0, 300.0)
    report = ScenarioReport(
        "s5_audit",
        "S5 audit: point-in-time check latency",
        options.mode,
        config={
            "events": total,
            "phases": PHASES,
            "repetitions": reps,
            "budget_per_time_s": budget,
        },
    )
    history = list(mixed_history(TENANT, total, seed=5))
    per_phase = len(history) // PHASES
    with Stack("s5", options) as stack:
        assert stack.processor is not None
        before, _ = stack.processor.applied()
        ends: list[int] = []
        started = time.monotonic()
        for phase in range(PHASES):
            chunk = history[
                phase * per_phase : (phase + 1) * per_phase if phase < PHASES - 1 else None
            ]
            published = stack.publish(chunk, mark=[len(chunk) - 1])
            ends.append(published.marks[len(chunk) - 1][2])
            time.sleep(1.0)
        stack.follow(before + len(history), options.pick(900.0, 7200.0), poll=0.5)
        load_s = time.monotonic() - started
        say(f"s5: {len(history):,} events of one tenant applied in {load_s:.0f}s")
        points: list[JsonDict] = []
        headers = {"authorization": f"Bearer {stack.token}"}
        path = f"/v1/tenants/{quote(TENANT, safe='')}/audit/check"
        with httpx.Client(base_url=stack.url, headers=headers, timeout=120) as client:
            asks = [
                (f"after phase {p}", p, rfc3339_ms(ends[p - 1] + 500)) for p in ASK_AFTER_PHASES
            ]
            asks.append(("now", PHASES, utc_now()))
            for label, phase, at in asks:
                params = {"principal": PRINCIPAL, "resource": RESOURCE, "action": ACTION, "at": at}
                latencies: list[float] = []
                replayed: list[int] = []
                allowed = None
                deadline = Deadline.after(budget)
                for _ in range(reps):
                    if deadline.passed():
                        break
                    t0 = time.monotonic()
                    response = client.get(path, params=params)
                    latencies.append(time.monotonic() - t0)
                    response.raise_for_status()
                    body = response.json()
                    replayed.append(int(body.get("replayed_events", -1)))
                    allowed = body["allowed"]
                point: JsonDict = {
                    "label": label,
                    "events_before": phase * per_phase,
                    "at": at,
                    "latency_ms": latency_summary_ms(latencies),
                    "replayed_events": max(replayed, default=None),
                    "allowed": allowed,
                }
                say(
                    f"s5: {label}: p50 {point['latency_ms']['p50']} ms, "
                    f"replayed {point['replayed_events']}"
                )
                points.append(point)
        report.results = {
            "events": len(history),
            "load_seconds": round(load_s, 1),
            "points": points,
            "check": {"principal": PRINCIPAL, "resource": RESOURCE, "action": ACTION},
            "processor_restarts": stack.processor_restarts,
        }
    for point in points:
        report.rows.append(
            Row(
                f"audit check p50, {point['label']}",
                point["latency_ms"]["p50"],
                "ms",
                note=f"{point['events_before']:,} events before, "
                f"{point['replayed_events']} replayed, max {point['latency_ms']['max']} ms",
            )
        )
    report.plots.append(plot(points))
    return report


def plot(points: list[JsonDict]) -> str:
    """Latency per past time, with the events replayed."""
    fig, ax = figure(1)
    labels = [p["label"] for p in points]
    xs = range(len(points))
    ax.bar(xs, [p["latency_ms"]["p50"] or 0 for p in points], label="p50 latency (ms)")
    ax.plot(xs, [p["latency_ms"]["max"] or 0 for p in points], "k^", label="max latency (ms)")
    ax.set_xticks(list(xs), labels, rotation=20, fontsize=8)
    ax.set_ylabel("ms")
    twin = ax.twinx()
    twin.plot(
        xs, [p["replayed_events"] or 0 for p in points], "o--", color="C1", label="events replayed"
    )
    twin.set_ylabel("events replayed after the snapshot")
    ax.set_title("S5 point-in-time check")
    ax.legend(loc="upper left")
    twin.legend(loc="upper right")
    return save_figure(fig, "s5_audit")
