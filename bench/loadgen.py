"""HTTP load generator: its own processes, keep-alive aiohttp clients, closed or open loop.

Closed loop: each of `concurrency` tasks sends its next request as soon as the previous answer
arrives, for a fixed time. Open loop: requests are scheduled at a fixed rate whatever the
answers; latency counts from the scheduled moment, so a server (or client) that falls behind
shows it in the percentiles instead of hiding it (no coordinated omission). Both run a warm-up
first and only record what was sent inside the measured window. Every loop is bounded in time,
and in-flight requests of the open loop are capped (requests past the cap are counted as
dropped, not sent).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp

from bench.common import JsonDict, latency_summary_ms

Mode = Literal["closed", "open"]
ALLOWED_MARK = b'"allowed":true'
OPEN_LOOP_POOL = 16


@dataclass(frozen=True)
class LoadSpec:
    """One load run: what to send, how, and for how long."""

    url: str
    path: str
    bodies: list[bytes]
    token: str
    mode: Mode
    concurrency: int = 0
    rate: float = 0.0
    duration: float = 10.0
    warmup: float = 2.0
    decisions_per_request: int = 1
    max_in_flight: int = 256
    timeout: float = 10.0
    label: str = ""


@dataclass
class WorkerResult:
    """What one load process measured inside the window."""

    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    allowed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    window: float = 0.0
    cpu_percent: float = 0.0
    error_sample: str = ""


def _worker_entry(spec: LoadSpec, index: int, parts: int, barrier: Any, queue: Any) -> None:
    """Process entry point: run the share of the load, put the result on the queue."""
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(_run(spec, index, parts, barrier))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        result = WorkerResult(errors=1, error_sample=f"worker crashed: {exc!r}")
    queue.put(asdict(result))


async def _run(spec: LoadSpec, index: int, parts: int, barrier: Any) -> WorkerResult:
    result = WorkerResult()
    statuses: Counter[str] = Counter()
    concurrency = max(1, spec.concurrency // parts + (1 if index < spec.concurrency % parts else 0))
    pool = concurrency if spec.mode == "closed" else min(spec.max_in_flight, OPEN_LOOP_POOL)
    headers = {"authorization": f"Bearer {spec.token}", "content-type": "application/json"}
    bodies = spec.bodies
    url = spec.url + spec.path
    connector = aiohttp.TCPConnector(limit=pool, force_close=False)
    timeout = aiohttp.ClientTimeout(total=spec.timeout)
    async with aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=timeout
    ) as client:
        # Open the connections before the clock starts.
        async def touch() -> None:
            async with client.get(spec.url + "/healthz") as response:
                await response.read()

        await asyncio.gather(*(touch() for _ in range(pool)))
        await asyncio.to_thread(barrier.wait, 60)
        cpu_start = time.process_time()
        start = time.monotonic()
        window_start = start + spec.warmup
        end = window_start + spec.duration

        async def one(body: bytes, scheduled: float) -> None:
            try:
                async with client.post(url, data=body) as response:
                    content = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                if scheduled >= window_start:
                    result.errors += 1
                    statuses[type(exc).__name__] += 1
                    result.error_sample = result.error_sample or repr(exc)
                return
            done = time.monotonic()
            if scheduled < window_start or scheduled >= end:
                return
            statuses[str(status)] += 1
            if status == 200:
                result.ok += 1
                result.latencies.append(done - scheduled)
                result.allowed += content.count(ALLOWED_MARK)
            else:
                result.errors += 1
                result.error_sample = result.error_sample or content[:300].decode(errors="replace")

        if spec.mode == "closed":

            async def loop(task_index: int) -> None:
                n = task_index * 7919 + index * 104729
                while True:
                    now = time.monotonic()
                    if now >= end:
                        return
                    await one(bodies[n % len(bodies)], now)
                    n += 1

            await asyncio.gather(*(loop(i) for i in range(concurrency)))
        else:
            rate = spec.rate / parts
            in_flight: set[asyncio.Task[None]] = set()
            sent = 0
            n = index * 104729
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                due = int((now - start) * rate) + 1
                while sent < due:
                    scheduled = start + sent / rate
                    sent += 1
                    if len(in_flight) >= spec.max_in_flight:
                        if scheduled >= window_start:
                            result.dropped += 1
                        continue
                    task = asyncio.create_task(one(bodies[n % len(bodies)], scheduled))
                    n += 1
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.sleep(max(0.0, min(0.002, start + sent / rate - time.monotonic())))
            if in_flight:
                _, late = await asyncio.wait(in_flight, timeout=spec.timeout + 1)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        result.window = spec.duration
        busy = time.process_time() - cpu_start
        result.cpu_percent = 100 * busy / max(1e-9, time.monotonic() - start)
    result.statuses = dict(statuses)
    return result


@dataclass
class LoadOutcome:
    """Merged results of every load process for one run."""

    spec: LoadSpec
    processes: int
    latencies: list[float]
    ok: int
    errors: int
    dropped: int
    allowed: int
    statuses: dict[str, int]
    window: float
    client_cpu_percent: float
    error_sample: str
    server: JsonDict = field(default_factory=dict)
    client: str = "python-httpx"
    reported_latency_ms: JsonDict | None = None
    """Percentiles computed by the client itself (wrk) instead of from raw latencies."""

    def summary(self) -> JsonDict:
        """JSON-ready figures of the run."""
        throughput = self.ok / self.window if self.window else 0.0
        decisions = throughput * self.spec.decisions_per_request
        return {
            "label": self.spec.label,
            "mode": self.spec.mode,
            "path": self.spec.path,
            "concurrency": self.spec.concurrency if self.spec.mode == "closed" else None,
            "target_rate": self.spec.rate if self.spec.mode == "open" else None,
            "duration_s": self.window,
            "warmup_s": self.spec.warmup,
            "load_processes": self.processes,
            "requests_ok": self.ok,
            "errors": self.errors,
            "dropped": self.dropped,
            "statuses": self.statuses,
            "error_sample": self.error_sample or None,
            "throughput_rps": round(throughput, 1),
            "decisions_per_s": round(decisions, 1),
            "allowed_ratio": None
            if self.allowed < 0
            else round(self.allowed / max(1, self.ok * self.spec.decisions_per_request), 3),
            "latency_ms": self.reported_latency_ms or latency_summary_ms(self.latencies),
            "client": self.client,
            "client_cpu_percent": round(self.client_cpu_percent, 1),
            "server": self.server,
        }


def run_load(
    spec: LoadSpec, processes: int, monitor_pids: dict[str, int] | None = None
) -> LoadOutcome:
    """Run a load in `processes` spawned processes; monitor server pids during the window."""
    from bench.monitor import ResourceMonitor

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    queue = ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker_entry,
            args=(spec, i, processes, barrier, queue),
            name=f"bench-load-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    results: list[JsonDict] = []
    monitor = ResourceMonitor(monitor_pids or {})
    try:
        barrier.wait(120)
        time.sleep(spec.warmup)
        with monitor:
            time.sleep(spec.duration)
        bound = spec.timeout + 30
        for _ in workers:
            results.append(queue.get(timeout=bound))
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    for item in results:
        latencies.extend(item["latencies"])
        statuses.update(item["statuses"])
    return LoadOutcome(
        spec=spec,
        processes=processes,
        latencies=latencies,
        ok=sum(int(r["ok"]) for r in results),
        errors=sum(int(r["errors"]) for r in results),
        dropped=sum(int(r["dropped"]) for r in results),
        allowed=sum(int(r["allowed"]) for r in results),
        statuses=dict(statuses),
        window=spec.duration,
        client_cpu_percent=sum(float(r["cpu_percent"]) for r in results),
        error_sample=next((str(r["error_sample"]) for r in results if r["error_sample"]), ""),
        server=monitor.result,
    )
