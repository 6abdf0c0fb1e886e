"""Change stream: how long from a grant until a Server-Sent Events follower receives it.

One SSE follower of the tenant's changes stays connected. Each sample posts one grant for a
fresh principal, polls POST /v1/check back to back until it answers allowed (the moment the
view row is visible), and notes when the follower's record for the grant arrived. Reported:
POST -> record, and view visible -> record (the stream's own delay after the view write; a
record that arrives before the check sees the row counts as 0). Idle machine, one API worker
process for the follower and the checks.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import httpx

from bench.common import Deadline, JsonDict, latency_summary_ms, say
from bench.events import grant
from bench.monitor import ResourceMonitor
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack

TENANT = "cs"
SAMPLE_TIMEOUT = 10.0
FLOOR_P99_MS = 100.0


class Follower:
    """A background SSE reader noting the arrival time of every record by its cause."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.arrived: dict[str, float] = {}
        self._url, self._headers = url, headers
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Follower:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the change stream did not open")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)

    def _run(self) -> None:
        headers = {**self._headers, "Accept": "text/event-stream"}
        with (
            httpx.Client(base_url=self._url, timeout=None) as client,
            client.stream("GET", f"/v1/tenants/{TENANT}/changes", headers=headers) as response,
        ):
            response.raise_for_status()
            self._ready.set()
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data: "):
                    record = json.loads(line[6:])
                    self.arrived.setdefault(record["cause"], time.monotonic())


def measure(client: httpx.Client, follower: Follower, count: int, budget: float) -> JsonDict:
    """`count` samples (bounded by `budget` seconds in all)."""
    to_record: list[float] = []
    after_view: list[float] = []
    timeouts = 0
    deadline = Deadline.after(budget)
    for i in range(count):
        if deadline.passed() or timeouts >= 3:
            break
        # A fresh principal each time: granting a held permission again changes nothing.
        tag = f"{i}-{time.time_ns()}"
        cause, user, doc = f"cs-{tag}", f"user:cs{tag}", f"doc:{TENANT}/d{tag}"
        body = {"events": [dict(grant(TENANT, user, doc, "read"), event_id=cause)]}
        check = {"tenant": TENANT, "principal": user, "resource": doc, "action": "read"}
        started = time.monotonic()
        client.post("/v1/events", json=body).raise_for_status()
        visible = None
        give_up = started + SAMPLE_TIMEOUT
        while time.monotonic() < give_up:
            if visible is None and client.post("/v1/check", json=check).json()["allowed"]:
                visible = time.monotonic()
            if visible is not None and cause in follower.arrived:
                break
            if visible is not None:
                time.sleep(0.001)
        arrived = follower.arrived.get(cause)
        if visible is None or arrived is None:
            timeouts += 1
            continue
        to_record.append(arrived - started)
        after_view.append(max(0.0, arrived - visible))
        time.sleep(0.1)
    return {
        "samples": len(to_record),
        "timeouts": timeouts,
        "post_to_record_ms": latency_summary_ms(to_record),
        "view_to_record_ms": latency_summary_ms(after_view),
        "view_to_record_s": [round(v, 4) for v in after_view],
        "post_to_record_s": [round(v, 4) for v in to_record],
    }


def run(options: Options) -> ScenarioReport:
    """Run the change-stream scenario and return its report."""
    count = options.pick(40, 200)
    budget = options.pick(90.0, 400.0)
    report = ScenarioReport(
        "changes_stream",
        "Change stream: grant until an SSE follower receives it",
        options.mode,
        config={"samples": count, "sample_timeout_s": SAMPLE_TIMEOUT, "api_workers": 1},
    )
    with Stack("cs", dataclasses.replace(options, workers=1)) as stack:
        headers = {"authorization": f"Bearer {stack.token}"}
        with (
            httpx.Client(base_url=stack.url, headers=headers, timeout=15) as client,
            Follower(stack.url, headers) as follower,
        ):
            measure(client, follower, 3, 30)
            with ResourceMonitor(stack.server_pids()) as monitor:
                idle = measure(client, follower, count, budget)
            idle["server"] = monitor.result
    p99 = idle["view_to_record_ms"]["p99"]
    say(f"changes: view -> SSE record p50 {idle['view_to_record_ms']['p50']} ms, p99 {p99} ms")
    report.results = {"idle": idle}
    report.rows = [
        Row("POST grant -> SSE record p50", idle["post_to_record_ms"]["p50"], "ms"),
        Row("POST grant -> SSE record p99", idle["post_to_record_ms"]["p99"], "ms"),
        Row("view visible -> SSE record p50", idle["view_to_record_ms"]["p50"], "ms"),
        Row(
            "view visible -> SSE record p99",
            p99,
            "ms",
            "<= 100 ms",
            p99 is not None and p99 <= FLOOR_P99_MS and not idle["timeouts"],
            f"{idle['samples']} samples, {idle['timeouts']} timeouts",
        ),
    ]
    report.plots.append(plot(idle))
    return report


def plot(idle: JsonDict) -> str:
    """Distribution (CDF) of the stream's delays."""
    fig, ax = figure(1)
    for key, label in (
        ("post_to_record_s", "POST -> record"),
        ("view_to_record_s", "view -> record"),
    ):
        values = sorted(1000 * v for v in idle[key])
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", label=f"{label} (n={len(values)})")
    ax.axvline(FLOOR_P99_MS, color="grey", linestyle="--", label="100 ms")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of samples")
    ax.set_title("Change stream, idle")
    ax.legend()
    return save_figure(fig, "changes_stream")
