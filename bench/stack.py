"""Our processes for one benchmark scenario, in a namespace of their own.

Like tests/support/stack.py (same environment variables, same isolation: topic, DLQ topic,
keyspace and consumer group per namespace), but the API runs with N uvicorn workers and the
processor exposes its metrics on a free port. Logs go to .local/logs/bench.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bench.common import LOGS, REPO, Deadline, JsonDict, say
from permstore.adapters.settings import LOCAL_DIR, Settings
from permstore.deploy.harness import (
    DEFAULT_KAFKA_BOOTSTRAP,
    ManagedProcess,
    api_command,
    bootstrap_command,
    free_port,
    namespace_env,
    namespace_settings,
    processor_command,
)

FAUST_DATA = Settings().faust_dir


@dataclass
class Namespace:
    """Topic, keyspace and consumer group of one scenario, and the environment naming them."""

    name: str
    env: dict[str, str]

    @classmethod
    def create(cls, scenario: str) -> Namespace:
        """A fresh namespace (unique per run) for a scenario."""
        name = f"b{scenario}{uuid.uuid4().hex[:6]}"
        # faust makes its per-app folder without parents: the folder must exist.
        FAUST_DATA.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(namespace_env(name))
        env.update(
            {
                "PERMSTORE_AUTH_KEYS_DIR": str(LOCAL_DIR / "keys"),
                "PERMSTORE_FAUST_DATADIR": str(FAUST_DATA),
                "PERMSTORE_LOG_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        return cls(name=name, env=env)

    def settings(self, **overrides: Any) -> Settings:
        """Settings as this namespace's processes see them."""
        return namespace_settings(self.env, **overrides)

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap servers."""
        return self.env.get("PERMSTORE_KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP)

    @property
    def topic(self) -> str:
        """The events topic."""
        return self.env["PERMSTORE_EVENTS_TOPIC"]

    def bootstrap(self) -> None:
        """Create the topics, keyspace, migrations and generation 1 (idempotent)."""
        started = time.monotonic()
        subprocess.run(
            bootstrap_command(),
            check=True,
            cwd=REPO,
            env=self.env,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
        say(f"namespace {self.name} bootstrapped in {time.monotonic() - started:.1f}s")

    def drop(self) -> None:
        """Delete the namespace's topics and keyspace."""
        drop_namespace(self.settings())


def drop_namespace(settings: Settings) -> None:
    """Delete a namespace's topics and keyspace (best effort, bounded)."""
    from permstore.services.ops import drop_data

    try:
        drop_data(settings)
    except Exception as exc:
        say(f"could not drop namespace {settings.cassandra_keyspace}: {exc!r}")


class BenchProcess(ManagedProcess):
    """One of our processes, run from the repository root with its log in .local/logs/bench."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        super().__init__(name, command, env, LOGS / f"{name}.log")


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


class Processor(BenchProcess):
    """The stream processor, with its Prometheus metrics on a free loopback port."""

    def __init__(self, namespace: Namespace, name: str, **env_overrides: str) -> None:
        self.metrics_port = free_port()
        env = dict(namespace.env, PERMSTORE_PROCESSOR_METRICS_PORT=str(self.metrics_port))
        env.update(env_overrides)
        super().__init__(name, processor_command(), env)

    def metrics(self) -> dict[str, float]:
        """Current metric values by name (labelled series keep their labels)."""
        response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
        values: dict[str, float] = {}
        for line in response.text.splitlines():
            if line.startswith("#"):
                continue
            match = _METRIC_LINE.match(line)
            if match:
                try:
                    values[match.group(1)] = float(match.group(2))
                except ValueError:
                    continue
        return values

    def applied(self) -> tuple[float, float]:
        """(events applied, view changes written) since this process started."""
        values = self.metrics()
        return (
            values.get("permstore_events_applied_total", 0.0),
            values.get("permstore_view_changes_total", 0.0),
        )

    def wait_metrics(self, timeout: float = 120) -> None:
        """Wait until the metrics endpoint answers."""
        deadline = Deadline.after(timeout)
        while not deadline.passed():
            if not self.alive():
                raise RuntimeError(f"{self.name} died:\n{self.log_tail()}")
            try:
                self.metrics()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} metrics never answered:\n{self.log_tail()}")


class Api(BenchProcess):
    """The API under uvicorn with N worker processes on a free loopback port."""

    def __init__(self, namespace: Namespace, workers: int, name: str = "api") -> None:
        self.port = free_port()
        self.workers = workers
        command = api_command(self.port, workers, log_level="warning")
        super().__init__(name, command, namespace.env)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """Pids of the processes that serve requests (the supervisor itself when workers=1)."""
        import psutil

        if self.workers <= 1:
            return [self.pid]
        pids = []
        for child in psutil.Process(self.pid).children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:
                continue
        return sorted(pids)

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until every worker runs and /readyz answers 200 a few times in a row."""
        deadline = Deadline.after(timeout)
        last = ""
        streak = 0
        while not deadline.passed():
            if not self.alive():
                raise RuntimeError(f"{self.name} died:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=3)
                ok = response.status_code == 200 and len(self.worker_pids()) == max(1, self.workers)
                streak = streak + 1 if ok else 0
                last = response.text
                if streak >= 2 * max(1, self.workers):
                    return
            except httpx.HTTPError as exc:
                streak, last = 0, repr(exc)
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready: {last}\n{self.log_tail()}")


_BUCKET = re.compile(r"^permstore_http_request_seconds_(bucket|sum|count)\{([^}]*)\}\s+(\S+)")


def _labels(text: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def scrape_route_latency(url: str, route: str, workers: int, tries: int = 40) -> JsonDict:
    """The API's own latency histogram of one route, per worker.

    Each worker keeps its own Prometheus registry, so /metrics is fetched on fresh connections
    until every worker answered (told apart by process_start_time_seconds).
    """
    seen: JsonDict = {}
    for _ in range(tries):
        try:
            text = httpx.get(f"{url}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        key = ""
        hist: JsonDict = {"buckets": {}, "sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            if line.startswith("process_start_time_seconds"):
                key = line.split()[-1]
                continue
            match = _BUCKET.match(line)
            if not match:
                continue
            labels = _labels(match.group(2))
            if labels.get("route") != route:
                continue
            value = float(match.group(3))
            if match.group(1) == "bucket":
                hist["buckets"][labels["le"]] = value
            else:
                hist[match.group(1)] = value
        seen[key] = hist
        if len(seen) >= max(1, workers):
            break
    return seen


def latency_delta(before: JsonDict, after: JsonDict) -> JsonDict:
    """Server-side mean and bucket-bound p50/p99 (ms) of the requests between two scrapes,
    over the workers seen in both."""
    workers = [key for key in after if key in before]
    count = sum(after[k]["count"] - before[k]["count"] for k in workers)
    if count <= 0:
        return {"count": 0, "workers": len(workers)}
    total = sum(after[k]["sum"] - before[k]["sum"] for k in workers)
    cumulative: dict[float, float] = {}
    for k in workers:
        for le, value in after[k]["buckets"].items():
            bound = float(le)
            cumulative[bound] = (
                cumulative.get(bound, 0.0) + value - before[k]["buckets"].get(le, 0.0)
            )
    bounds = sorted(cumulative.items())

    def upper(q: float) -> float | None:
        for bound, seen in bounds:
            if seen >= q * count:
                return None if bound == float("inf") else round(bound * 1000, 1)
        return None

    return {
        "count": int(count),
        "workers": len(workers),
        "mean_ms": round(1000 * total / count, 2),
        "p50_le_ms": upper(0.5),
        "p99_le_ms": upper(0.99),
    }


def issue_token(tenant: str = "*", scopes: str = "check,write,audit") -> str:
    """A signed token the bench API accepts (dev key in .local/keys)."""
    from permstore.services.auth_settings import AuthSettings, build_issuer

    settings = AuthSettings(keys_dir=LOCAL_DIR / "keys")
    return build_issuer(settings).issue(
        f"service:bench-{os.getpid()}", tenant, scopes, timedelta(hours=2)
    )


def wait_lag_zero(settings: Settings, timeout: float, generation: int = 1) -> float:
    """Wait until the processor group has committed every record; returns seconds waited."""
    from permstore.services.ops import wait_caught_up

    return wait_caught_up(settings, generation, timeout)


class ProcessorDiedError(RuntimeError):
    """The processor exited while we waited for it; carries the samples taken so far."""

    def __init__(self, message: str, samples: list[tuple[float, float, float]]) -> None:
        super().__init__(message)
        self.samples = samples


def seconds_since_append(samples: list[tuple[float, float, float]], appended_ms: float) -> float:
    """Seconds from a record's append (its Kafka timestamp, ms) to the last wait_applied sample."""
    applied_wall = time.time() - (time.monotonic() - samples[-1][0])
    return applied_wall - appended_ms / 1000


def wait_applied(
    processor: Processor,
    target: float,
    timeout: float,
    poll: float = 0.1,
    *,
    partial: bool = False,
) -> list[tuple[float, float, float]]:
    """Poll the processor's counters until events applied reach target.

    Returns the samples (monotonic time, events applied, view changes), first and last included.
    Past the timeout: raises, or with partial=True returns the samples so far.
    """
    deadline = Deadline.after(timeout)
    samples: list[tuple[float, float, float]] = []
    while True:
        if not processor.alive():
            raise ProcessorDiedError(f"{processor.name} died:\n{processor.log_tail()}", samples)
        try:
            applied, changes = processor.applied()
            samples.append((time.monotonic(), applied, changes))
            if applied >= target:
                return samples
        except httpx.HTTPError:
            pass
        if deadline.passed():
            if partial:
                return samples
            have = samples[-1][1] if samples else 0
            raise TimeoutError(
                f"{processor.name} applied {have:.0f} of {target:.0f} events in {timeout:.0f}s"
            )
        time.sleep(poll)
