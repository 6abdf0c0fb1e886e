"""Options shared by every scenario, and the stack one scenario runs against."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import psutil

from bench.common import Deadline, JsonDict, say, utc_now
from bench.events import Published, publish
from bench.loadgen import LoadOutcome, LoadSpec
from bench.monitor import ResourceMonitor, listening_pid
from bench.stack import (
    Api,
    Namespace,
    Processor,
    ProcessorDiedError,
    issue_token,
    latency_delta,
    scrape_route_latency,
    wait_applied,
    wait_lag_zero,
)
from bench.wrk import run_best

T = TypeVar("T")
MAX_RESTARTS = 3


@dataclass(frozen=True)
class Options:
    """Command-line choices every scenario sees."""

    full: bool = False
    workers: int = 1
    load_procs: int = 2
    keep_data: bool = False
    profile: bool = False

    @property
    def mode(self) -> str:
        """'quick' or 'full'."""
        return "full" if self.full else "quick"

    def pick(self, quick: T, full: T) -> T:
        """The quick or the full value."""
        return full if self.full else quick


class Stack:
    """Namespace + processor + API (N workers) of one scenario; torn down on exit."""

    def __init__(
        self,
        scenario: str,
        options: Options,
        *,
        with_api: bool = True,
        with_processor: bool = True,
        api_env: dict[str, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.namespace = Namespace.create(scenario)
        self.with_api = with_api
        self.with_processor = with_processor
        self.api_env = dict(api_env or {})
        self.processor: Processor | None = None
        self.api: Api | None = None
        self.token = issue_token("*")
        self._processors = 0
        self.processor_restarts: list[str] = []

    def __enter__(self) -> Stack:
        say(f"{self.scenario}: namespace {self.namespace.name}")
        self.namespace.bootstrap()
        try:
            if self.with_processor:
                self.start_processor()
            if self.with_api:
                self.api = Api(
                    self._api_namespace(), self.options.workers, name=f"{self.namespace.name}-api"
                )
                self.api.start()
                self.api.wait_ready()
                say(
                    f"{self.scenario}: API ready on {self.api.url} ({self.options.workers} workers)"
                )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.api is not None:
            self.api.stop()
        if self.processor is not None:
            self.processor.stop()
        if not self.options.keep_data:
            self.namespace.drop()

    def _api_namespace(self) -> Namespace:
        return dataclasses.replace(self.namespace, env={**self.namespace.env, **self.api_env})

    def restart_api(self, **env: str) -> None:
        """Replace the API with one whose environment adds env to the namespace's."""
        if self.api is not None:
            self.api.stop()
        self.api_env.update(env)
        self.api = Api(
            self._api_namespace(), self.options.workers, name=f"{self.namespace.name}-api-2"
        )
        self.api.start()
        self.api.wait_ready()
        say(f"{self.scenario}: API restarted with {env}")

    def start_processor(self, **env: str) -> Processor:
        """Start a processor (the namespace's consumer group) and wait for its metrics."""
        self._processors += 1
        self.processor = Processor(
            self.namespace, f"{self.namespace.name}-processor-{self._processors}", **env
        )
        self.processor.start()
        self.processor.wait_metrics()
        return self.processor

    def follow(
        self, target: float, timeout: float, poll: float = 0.2, *, partial: bool = False
    ) -> list[tuple[float, float, float]]:
        """Counter samples of the processor until `target` events (counted from its start) are
        applied; like `make run`'s supervisor, restarts a processor that dies (at most 3 times,
        recorded in processor_restarts), carrying its counts over."""
        deadline = Deadline.after(timeout)
        samples: list[tuple[float, float, float]] = []
        base_applied = base_rows = 0.0
        while True:
            assert self.processor is not None
            try:
                part = wait_applied(
                    self.processor, target - base_applied, deadline.left(), poll, partial=partial
                )
                samples += [(t, a + base_applied, c + base_rows) for t, a, c in part]
                return samples
            except ProcessorDiedError as died:
                samples += [(t, a + base_applied, c + base_rows) for t, a, c in died.samples]
                reason = death_reason(str(died))
                self.processor_restarts.append(f"{utc_now()} {reason}")
                say(f"{self.scenario}: processor died ({reason}); restarting it")
                if len(self.processor_restarts) > MAX_RESTARTS or deadline.passed():
                    raise
                if samples:
                    base_applied, base_rows = samples[-1][1], samples[-1][2]
                self.start_processor()

    def stop_processor(self) -> None:
        """Stop the running processor (SIGTERM: it finishes its batch and commits)."""
        if self.processor is not None:
            self.processor.stop()

    @property
    def url(self) -> str:
        """Base URL of the API."""
        assert self.api is not None
        return self.api.url

    def server_pids(self) -> dict[str, int]:
        """Label -> pid of every server process worth watching."""
        pids: dict[str, int] = {}
        if self.api is not None:
            for index, pid in enumerate(self.api.worker_pids(), 1):
                pids[f"api-{index}"] = pid
        if self.processor is not None and self.processor.alive():
            pids["processor"] = self.processor.pid
        settings = self.namespace.settings()
        kafka_port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[-1])
        for label, port in (("cassandra", settings.cassandra_port), ("kafka", kafka_port)):
            found = listening_pid(port)
            if found is not None:
                pids[label] = found
        return pids

    def publish(self, events: Iterable[JsonDict], mark: Iterable[int] = ()) -> Published:
        """Publish events straight to the namespace's topic."""
        return publish(self.namespace.bootstrap_servers, self.namespace.topic, events, mark)

    def load(self, events: list[JsonDict], what: str, timeout: float | None = None) -> JsonDict:
        """Publish events with the processor running and wait until all are applied."""
        assert self.processor is not None
        before, _ = self.processor.applied()
        started = time.monotonic()
        bound = timeout if timeout is not None else max(180.0, len(events) / 300)
        with ResourceMonitor(self.server_pids()) as monitor:
            published = self.publish(events)
            samples = self.follow(before + len(events), bound)
        elapsed = time.monotonic() - started
        wait_lag_zero(self.namespace.settings(), 60)
        say(
            f"{self.scenario}: loaded {len(events):,} {what} events in {elapsed:.1f}s "
            f"(published at {published.rate:,.0f}/s)"
        )
        return {
            "events": len(events),
            "publish_seconds": round(published.seconds, 2),
            "applied_seconds": round(elapsed, 2),
            "view_changes": samples[-1][2] - samples[0][2],
            "events_per_s": round(len(events) / elapsed, 1),
            "server": monitor.result,
        }

    def settle(self, below: float = 25.0, window: float = 5.0, bound: float = 300.0) -> float:
        """Wait until Cassandra's CPU over `window` seconds is under `below` percent (its
        flushes and compactions after a load are done); returns the seconds waited."""
        pid = self.server_pids().get("cassandra")
        started = time.monotonic()
        if pid is None:
            return 0.0
        process = psutil.Process(pid)
        deadline = Deadline.after(bound)
        process.cpu_percent(None)
        settled = False
        while not settled and not deadline.passed():
            time.sleep(window)
            settled = process.cpu_percent(None) < below
        waited = time.monotonic() - started
        state = "settled" if settled else f"still above {below:g} % CPU"
        say(f"{self.scenario}: Cassandra {state} after {waited:.0f}s")
        return round(waited, 1)

    def run_load(self, spec: LoadSpec) -> LoadOutcome:
        """Run an HTTP load against the API while watching the servers."""
        workers = self.options.workers
        before = scrape_route_latency(self.url, spec.path, workers)
        outcome = run_best(spec, self.options.load_procs, self.server_pids())
        after = scrape_route_latency(self.url, spec.path, workers)
        # Includes warm-up requests; the API's own view of the route, middleware included.
        outcome.server["api_route_latency"] = latency_delta(before, after)
        summary = outcome.summary()
        lat = summary["latency_ms"]
        say(
            f"{self.scenario}: {spec.label}: {summary['throughput_rps']:,.0f} req/s, "
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, errors {outcome.errors}, "
            f"dropped {outcome.dropped}"
        )
        return outcome


def steady_rate(samples: list[tuple[float, float, float]], total: float) -> JsonDict:
    """Events/s and view rows/s between 5 % applied and the last sample."""
    if not samples or samples[-1][1] <= 0:
        return {
            "events_per_s": 0.0,
            "view_rows_per_s": 0.0,
            "seconds": None,
            "first_applied_after_start_s": None,
            "applied": 0.0,
            "view_rows": 0.0,
            "complete": False,
        }
    start = next((s for s in samples if s[1] >= 0.05 * total), samples[0])
    end = samples[-1]
    seconds = max(1e-6, end[0] - start[0])
    first = next(s for s in samples if s[1] > 0)
    return {
        "events_per_s": round((end[1] - start[1]) / seconds, 1),
        "view_rows_per_s": round((end[2] - start[2]) / seconds, 1),
        "seconds": round(seconds, 2),
        "first_applied_after_start_s": round(first[0] - samples[0][0], 2),
        "applied": end[1],
        "view_rows": end[2],
        "complete": end[1] >= total,
    }


def death_reason(log_tail: str) -> str:
    """The line of a processor's log tail that says why it stopped."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for marker in ("Crashed reason=", "Error", "error"):
        for line in lines:
            if marker in line:
                return line[:300]
    return lines[-1][:300] if lines else "exited"
