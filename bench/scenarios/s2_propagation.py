"""S2 propagation: how long from POST /v1/events of a grant until a check sees it.

Each sample posts one grant for a fresh (user, document) through the API, then polls
POST /v1/check back to back (one keep-alive connection) until it answers allowed. Measured
idle, then while another process publishes 1,000 direct grants per second to 64 other
tenants straight to Kafka. A sample gives up after 10 s (counted as a timeout).
"""

from __future__ import annotations

import multiprocessing
import time

import httpx

from bench.common import Deadline, JsonDict, latency_summary_ms, say
from bench.events import grant, paced_publisher
from bench.monitor import ResourceMonitor
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack
from bench.stack import wait_lag_zero

TENANT = "s2"
SAMPLE_TIMEOUT = 10.0
BACKGROUND_RATE = 1000.0
BACKGROUND_TENANTS = 64
IDLE_FLOOR_P99_S = 1.0


def measure(client: httpx.Client, phase: str, count: int, budget: float) -> JsonDict:
    """`count` propagation samples (bounded by `budget` seconds in all)."""
    visible: list[float] = []
    acked: list[float] = []
    polls: list[int] = []
    timeouts = 0
    deadline = Deadline.after(budget)
    for i in range(count):
        if deadline.passed() or timeouts >= 3:
            break
        user, doc = f"user:{phase}-{i}", f"doc:{TENANT}/{phase}/d{i}"
        body = {"events": [grant(TENANT, user, doc, "read")]}
        check = {"tenant": TENANT, "principal": user, "resource": doc, "action": "read"}
        started = time.monotonic()
        response = client.post("/v1/events", json=body)
        response.raise_for_status()
        acked.append(time.monotonic() - started)
        n = 0
        give_up = started + SAMPLE_TIMEOUT
        while True:
            n += 1
            answer = client.post("/v1/check", json=check)
            answer.raise_for_status()
            if answer.json()["allowed"]:
                visible.append(time.monotonic() - started)
                break
            if time.monotonic() >= give_up:
                timeouts += 1
                break
        polls.append(n)
        time.sleep(0.1)
    return {
        "samples": len(visible),
        "timeouts": timeouts,
        "visible_ms": latency_summary_ms(visible),
        "post_ack_ms": latency_summary_ms(acked),
        "mean_polls": round(sum(polls) / max(1, len(polls)), 1),
        "visible_s": [round(v, 4) for v in visible],
    }


def run(options: Options) -> ScenarioReport:
    """Run S2 and return its report."""
    count = options.pick(30, 200)
    budget = options.pick(90.0, 400.0)
    report = ScenarioReport(
        "s2_propagation",
        "S2 propagation: POST grant until a check sees it",
        options.mode,
        config={
            "samples_per_phase": count,
            "sample_timeout_s": SAMPLE_TIMEOUT,
            "background_rate": BACKGROUND_RATE,
            "background_tenants": BACKGROUND_TENANTS,
            "api_workers": options.workers,
        },
    )
    with Stack("s2", options) as stack:
        headers = {"authorization": f"Bearer {stack.token}"}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=15) as client:
            measure(client, "warm", 3, 30)
            with ResourceMonitor(stack.server_pids()) as idle_monitor:
                idle = measure(client, "idle", count, budget)
            idle["server"] = idle_monitor.result
            say(f"s2: idle p50 {idle['visible_ms']['p50']} ms, p99 {idle['visible_ms']['p99']} ms")
            ctx = multiprocessing.get_context("spawn")
            ready, stop, queue = ctx.Event(), ctx.Event(), ctx.Queue()
            background = ctx.Process(
                target=paced_publisher,
                args=(
                    stack.namespace.bootstrap_servers,
                    stack.namespace.topic,
                    BACKGROUND_RATE,
                    budget + 60,
                    BACKGROUND_TENANTS,
                    ready,
                    stop,
                    queue,
                ),
                daemon=True,
            )
            background.start()
            try:
                ready.wait(60)
                time.sleep(3)  # let the processor settle into the background load
                assert stack.processor is not None
                applied_before, t_before = stack.processor.applied()[0], time.monotonic()
                with ResourceMonitor(stack.server_pids()) as load_monitor:
                    loaded = measure(client, "load", count, budget)
                loaded["server"] = load_monitor.result
                applied_after = stack.processor.applied()[0]
                loaded["processor_applied_per_s"] = round(
                    (applied_after - applied_before) / (time.monotonic() - t_before), 1
                )
            finally:
                stop.set()
                produced: JsonDict = queue.get(timeout=60)
                background.join(10)
            loaded["background"] = produced
            say(
                f"s2: under {produced['rate']:.0f} events/s: p50 {loaded['visible_ms']['p50']} ms,"
                f" p99 {loaded['visible_ms']['p99']} ms, timeouts {loaded['timeouts']}"
            )
            try:
                loaded["catch_up_after_s"] = round(
                    wait_lag_zero(stack.namespace.settings(), 120), 1
                )
            except TimeoutError as exc:
                loaded["catch_up_after_s"] = str(exc)
    report.results = {
        "idle": idle,
        "under_load": loaded,
        "processor_restarts": stack.processor_restarts,
    }
    idle_p99 = idle["visible_ms"]["p99"]
    report.rows = [
        Row("propagation p50, idle", idle["visible_ms"]["p50"], "ms"),
        Row(
            "propagation p99, idle",
            idle_p99,
            "ms",
            "<= 1 s",
            idle_p99 is not None and idle_p99 <= 1000 * IDLE_FLOOR_P99_S and not idle["timeouts"],
            f"{idle['samples']} samples, {idle['timeouts']} timeouts",
        ),
        Row(
            "propagation p50, 1,000 events/s background",
            loaded["visible_ms"]["p50"],
            "ms",
            note=f"background published {loaded['background']['rate']:,.0f}/s, "
            f"processor applied {loaded['processor_applied_per_s']:,.0f}/s",
        ),
        Row(
            "propagation p99, 1,000 events/s background",
            loaded["visible_ms"]["p99"],
            "ms",
            note=f"{loaded['samples']} samples, {loaded['timeouts']} timeouts",
        ),
    ]
    report.plots.append(plot(idle, loaded))
    return report


def plot(idle: JsonDict, loaded: JsonDict) -> str:
    """Distribution (CDF) of propagation time, idle and under background writes."""
    fig, ax = figure(1)
    for data, label in ((idle, "idle"), (loaded, "1,000 events/s background")):
        values = sorted(1000 * v for v in data["visible_s"])
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", label=f"{label} (n={len(values)})")
    ax.axvline(1000 * IDLE_FLOOR_P99_S, color="grey", linestyle="--", label="1 s")
    ax.set_xscale("log")
    ax.set_xlabel("POST /v1/events -> check allowed (ms)")
    ax.set_ylabel("fraction of samples")
    ax.set_title("S2 propagation")
    ax.legend()
    return save_figure(fig, "s2_propagation")
