"""S7 cached checks: distinct-check counts and a write load beside the checks (issue 10).

S1's tenant and data. Each run draws its checks from a fixed pool of N distinct (user,
document, action) questions, N = 1,000 or 100,000, as singles (closed loop, c = 8 and 16) and
as batches of 100. One run asks the 1,000 while a writer posts 20 events/s (grants and revokes
of random users' documents) to the same tenant, so the principal cache is evicted exactly as
the touch records say. Peak RSS of every API worker and of the processor is in each run's
`server` figures.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
import orjson

from bench import events as ev
from bench.common import JsonDict, say
from bench.loadgen import LoadSpec
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack
from bench.scenarios.s1_checks import TENANT, USERS, dataset, random_check

WRITES_PER_SECOND = 20.0
UNDER_WRITES = "1,000 distinct c=8 beside 20 writes/s"
UNDER_WRITES_FLOOR_RPS, UNDER_WRITES_FLOOR_P99_MS = 2000.0, 20.0
MANY_FLOOR_RPS, MANY_BATCH_FLOOR_DPS = 2500.0, 50000.0


def distinct_checks(count: int, seed: int) -> list[dict[str, str]]:
    """count different questions about the tenant."""
    rng = random.Random(seed)
    found: dict[bytes, dict[str, str]] = {}
    while len(found) < count:
        item = random_check(rng)
        found.setdefault(orjson.dumps(item), item)
    return list(found.values())


def singles(pool: list[dict[str, str]]) -> list[bytes]:
    """One POST /v1/check body per question, in a shuffled order."""
    bodies = [orjson.dumps({"tenant": TENANT, **item}) for item in pool]
    random.Random(7).shuffle(bodies)
    return bodies


def batches(pool: list[dict[str, str]], count: int, size: int = 100) -> list[bytes]:
    """count batch bodies of size questions drawn from the pool."""
    rng = random.Random(11)
    return [
        orjson.dumps({"tenant": TENANT, "checks": rng.sample(pool, size)}) for _ in range(count)
    ]


class Writer:
    """Posts grants and revokes of random users' documents at a steady rate in a thread."""

    def __init__(self, url: str, token: str, rate: float) -> None:
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.posted = 0
        self.failed = 0

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()

    def _run(self) -> None:
        rng = random.Random(3)
        held: list[tuple[str, str]] = []
        started = time.monotonic()
        while not self._stop.is_set():
            if held and rng.random() < 0.5:
                principal, resource = held.pop(rng.randrange(len(held)))
                event = ev.revoke(TENANT, principal, resource, "read")
            else:
                principal = f"user:u{rng.randrange(USERS)}"
                resource = f"doc:{TENANT}/w/{rng.randrange(1000)}"
                held.append((principal, resource))
                event = ev.grant(TENANT, principal, resource, "read")
            try:
                self._client.post("/v1/events", json={"events": [event]}).raise_for_status()
                self.posted += 1
            except httpx.HTTPError:
                self.failed += 1
            wait = started + (self.posted + self.failed) / self._rate - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)


def run(options: Options) -> ScenarioReport:
    """Run S7 and return its report."""
    duration = options.pick(8.0, 20.0)
    warmup = options.pick(3.0, 5.0)
    few, many = distinct_checks(1_000, 1), distinct_checks(100_000, 2)
    report = ScenarioReport(
        "s7_cached_checks",
        "S7 cached checks: 1,000 and 100,000 distinct checks, and checks beside writes",
        options.mode,
        config={
            "api_workers": options.workers,
            "load_processes": options.load_procs,
            "duration_s": duration,
            "warmup_s": warmup,
            "writes_per_s": WRITES_PER_SECOND,
            "dataset": "S1's (2,000 users, 100 nested groups, 500 documents)",
        },
    )
    loads: list[tuple[str, bool, dict[str, Any]]] = [
        ("1,000 distinct c=8", False, {"bodies": singles(few), "concurrency": 8}),
        ("1,000 distinct c=16", False, {"bodies": singles(few), "concurrency": 16}),
        ("100,000 distinct c=8", False, {"bodies": singles(many), "concurrency": 8}),
        ("1,000 distinct batch100 c=8", False, {"bodies": batches(few, 300), "concurrency": 8}),
        (
            "100,000 distinct batch100 c=8",
            False,
            {"bodies": batches(many, 1000), "concurrency": 8},
        ),
        (UNDER_WRITES, True, {"bodies": singles(few), "concurrency": 8}),
    ]
    runs: list[JsonDict] = []
    with Stack("s7", options) as stack:
        report.results["load"] = stack.load(dataset(random.Random(1)), "S1 dataset")
        for label, writes, load in loads:
            batch = "batch" in label
            spec = LoadSpec(
                url=stack.url,
                token=stack.token,
                path="/v1/check/batch" if batch else "/v1/check",
                mode="closed",
                duration=duration,
                warmup=warmup,
                decisions_per_request=100 if batch else 1,
                label=label,
                **load,
            )
            if writes:
                with Writer(stack.url, stack.token, WRITES_PER_SECOND) as writer:
                    outcome = stack.run_load(spec)
                summary = outcome.summary() | {"writes_posted": writer.posted}
                summary["writes_failed"] = writer.failed
            else:
                summary = stack.run_load(spec).summary()
            runs.append(summary)
            say(
                f"s7: {label}: {summary['decisions_per_s']:,.0f} decisions/s, "
                f"p99 {summary['latency_ms'].get('p99')} ms"
            )
        report.results["processor_restarts"] = stack.processor_restarts
    report.results["runs"] = runs
    summarise(report, runs)
    report.plots.append(plot(runs))
    return report


def summarise(report: ScenarioReport, runs: list[JsonDict]) -> None:
    """Rows with the issue's floors."""
    by_label = {r["label"]: r for r in runs}
    floors = {
        "1,000 distinct c=8 beside 20 writes/s": (
            UNDER_WRITES_FLOOR_RPS,
            UNDER_WRITES_FLOOR_P99_MS,
        ),
        "100,000 distinct c=8": (MANY_FLOOR_RPS, None),
        "100,000 distinct batch100 c=8": (MANY_BATCH_FLOOR_DPS, None),
    }
    for run in runs:
        label = run["label"]
        floor, p99_floor = floors.get(label, (None, None))
        rate = float(run["decisions_per_s"])
        p99 = run["latency_ms"].get("p99")
        passed = None if floor is None else rate >= floor
        if passed is not None and p99_floor is not None:
            passed = passed and p99 is not None and p99 <= p99_floor
        floor_text = "" if floor is None else f">= {floor:,.0f}/s"
        if p99_floor is not None:
            floor_text += f", p99 <= {p99_floor:g} ms"
        report.rows.append(
            Row(f"{label}", rate, "decisions/s", floor_text, passed, f"p99 {p99} ms")
        )
    for role, bound in (("api", 300.0), ("processor", 500.0)):
        peak = max(
            (
                float(figures.get("peak_rss_mb") or 0.0)
                for run in by_label.values()
                for name, figures in (run.get("server") or {}).get("processes", {}).items()
                if name.startswith(role)
            ),
            default=0.0,
        )
        report.rows.append(
            Row(f"{role} peak RSS (each process)", peak, "MB", f"<= {bound:g} MB", peak <= bound)
        )


def plot(runs: list[JsonDict]) -> str:
    """Decisions/s and p99 per run."""
    fig, (left, right) = figure(2)
    labels = [r["label"] for r in runs]
    left.barh(labels, [r["decisions_per_s"] for r in runs])
    left.set_xlabel("decisions/s")
    right.barh(labels, [r["latency_ms"].get("p99") or 0 for r in runs])
    right.set_xlabel("p99 ms")
    right.set_yticklabels([])
    fig.suptitle("S7 cached checks")
    return save_figure(fig, "s7_cached_checks")
