"""Options shared by every scenario, and the stack one scenario runs against."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from bench.common import JsonDict, say
from bench.events import Published, publish
from bench.loadgen import LoadOutcome, LoadSpec, run_load
from bench.monitor import ResourceMonitor, listening_pid
from bench.stack import Api, Namespace, Processor, issue_token, wait_applied, wait_lag_zero

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """Command-line choices every scenario sees."""

    full: bool = False
    workers: int = 2
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

    def __init__(self, scenario: str, options: Options, *, with_api: bool = True) -> None:
        self.scenario = scenario
        self.options = options
        self.namespace = Namespace.create(scenario)
        self.with_api = with_api
        self.processor: Processor | None = None
        self.api: Api | None = None
        self.token = issue_token("*")
        self._processors = 0

    def __enter__(self) -> Stack:
        say(f"{self.scenario}: namespace {self.namespace.name}")
        self.namespace.bootstrap()
        try:
            self.start_processor()
            if self.with_api:
                self.api = Api(
                    self.namespace, self.options.workers, name=f"{self.namespace.name}-api"
                )
                self.api.start()
                self.api.wait_ready()
                say(f"{self.scenario}: API ready on {self.api.url} ({self.options.workers} workers)")
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

    def start_processor(self, **env: str) -> Processor:
        """Start a processor (the namespace's consumer group) and wait for its metrics."""
        self._processors += 1
        self.processor = Processor(
            self.namespace, f"{self.namespace.name}-processor-{self._processors}", **env
        )
        self.processor.start()
        self.processor.wait_metrics()
        return self.processor

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
        for label, port in (("cassandra", 9042), ("kafka", 9092)):
            pid = listening_pid(port)
            if pid is not None:
                pids[label] = pid
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
            samples = wait_applied(self.processor, before + len(events), bound, poll=0.2)
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

    def run_load(self, spec: LoadSpec) -> LoadOutcome:
        """Run an HTTP load against the API while watching the servers."""
        outcome = run_load(spec, self.options.load_procs, self.server_pids())
        summary = outcome.summary()
        lat = summary["latency_ms"]
        say(
            f"{self.scenario}: {spec.label}: {summary['throughput_rps']:,.0f} req/s, "
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, errors {outcome.errors}, "
            f"dropped {outcome.dropped}"
        )
        return outcome
