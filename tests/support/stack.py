"""Real servers and our own processes for integration and e2e tests.

Kafka and Cassandra are always real: testcontainers when a Docker engine answers a ping
(or PERMSTORE_TEST_SERVERS=docker), else the local jars started by deploy/localstack.py.
Tests use their own topic, keyspace and consumer group so they never disturb `make run`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".local" / "logs" / "tests"


def docker_engine_answers() -> bool:
    """True when a Docker daemon answers a ping (the client binary alone is not enough)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackEnvironment:
    """Environment variables every process of one test session shares."""

    env: dict[str, str]
    api_port: int
    containers: list[object] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        """Base URL of the API under test."""
        return f"http://127.0.0.1:{self.api_port}"


def start_servers() -> StackEnvironment:
    """Bring up real Kafka and Cassandra and return the environment pointing at them."""
    mode = os.environ.get("PERMSTORE_TEST_SERVERS", "auto")
    # One namespace per session, so concurrent sessions never share a topic or keyspace.
    suffix = os.environ.get("PERMSTORE_TEST_NAMESPACE") or f"t{os.getpid()}"
    env = dict(os.environ)
    env.update(
        {
            "PERMSTORE_EVENTS_TOPIC": f"permstore.{suffix}.events",
            "PERMSTORE_DLQ_TOPIC": f"permstore.{suffix}.events.dlq",
            "PERMSTORE_USAGE_TOPIC": f"permstore.{suffix}.usage",
            "PERMSTORE_CASSANDRA_KEYSPACE": f"permstore_{suffix}",
            "PERMSTORE_PROCESSOR_GROUP": f"permstore-{suffix}-processor",
            "PERMSTORE_PROCESSOR_METRICS_PORT": "0",
            "PERMSTORE_PROCESSOR_BATCH_SECONDS": "0.02",
            "PERMSTORE_LOG_LEVEL": "INFO",
        }
    )
    containers: list[object] = []
    if mode == "docker" or (mode == "auto" and docker_engine_answers()):
        containers = _start_containers(env)
    else:
        subprocess.run(
            [sys.executable, str(REPO / "deploy" / "localstack.py"), "up"], check=True, cwd=REPO
        )
    if os.environ.get("PERMSTORE_TEST_KEEP_DATA") != "1":
        drop_test_data(env)
    subprocess.run(
        [sys.executable, "-m", "adapters.bootstrap"], check=True, cwd=REPO, env=env, timeout=120
    )
    return StackEnvironment(env=env, api_port=free_port(), containers=containers)


def drop_test_data(env: dict[str, str]) -> None:
    """Start each session from an empty test topic and keyspace, so comparisons are exact."""
    from adapters.settings import Settings
    from services.ops import drop_data

    settings = Settings(
        kafka_bootstrap=env.get("PERMSTORE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        events_topic=env["PERMSTORE_EVENTS_TOPIC"],
        dlq_topic=env["PERMSTORE_DLQ_TOPIC"],
        usage_topic=env.get("PERMSTORE_USAGE_TOPIC", "permstore.usage"),
        processor_group=env["PERMSTORE_PROCESSOR_GROUP"],
        cassandra_keyspace=env["PERMSTORE_CASSANDRA_KEYSPACE"],
    )
    drop_data(settings)


def _start_containers(env: dict[str, str]) -> list[object]:
    """Kafka and Cassandra in containers (only where a Docker engine exists)."""
    from testcontainers.cassandra import CassandraContainer
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer("apache/kafka:3.9.1").with_kraft()
    cassandra = CassandraContainer("cassandra:5.0")
    kafka.start()
    cassandra.start()
    env["PERMSTORE_KAFKA_BOOTSTRAP"] = kafka.get_bootstrap_server()
    # The container's broker has no SASL: this process (tests/support/kafka_io.py) and ours.
    env["PERMSTORE_KAFKA_SECURITY_PROTOCOL"] = os.environ["PERMSTORE_KAFKA_SECURITY_PROTOCOL"] = (
        "PLAINTEXT"
    )
    env["PERMSTORE_CASSANDRA_HOSTS"] = cassandra.get_container_host_ip()
    env["PERMSTORE_CASSANDRA_PORT"] = str(cassandra.get_exposed_port(9042))
    return [kafka, cassandra]


class ManagedProcess:
    """A processor or API process that tests can start, kill and restart."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        namespace = env.get("PERMSTORE_CASSANDRA_KEYSPACE", "permstore")
        self.log_path = LOGS / f"{namespace}-{name}.log"

    def start(self) -> None:
        """Start the process, appending to its log."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL past the bound."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def alive(self) -> bool:
        """True while running."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of its log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def processor(env: dict[str, str], name: str = "processor") -> ManagedProcess:
    """A stream processor process."""
    return ManagedProcess(name, [sys.executable, "-m", "streams.main"], env)


def api(env: dict[str, str], port: int, name: str = "api") -> ManagedProcess:
    """An API process on a loopback port."""
    return ManagedProcess(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env,
    )


@contextmanager
def extra_api(env: dict[str, str], name: str, **overrides: str) -> Iterator[str]:
    """A second API process with some settings changed; yields its base URL once ready."""
    port = free_port()
    process = api({**env, **overrides}, port, name=name)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.stop()


def wait_ready(url: str, process: ManagedProcess, timeout: float = 90) -> None:
    """Wait until /readyz answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} died:\n{process.log_tail()}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=3)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{process.name} not ready: {last}\n{process.log_tail()}")


def stop_all(processes: Iterator[ManagedProcess] | list[ManagedProcess]) -> None:
    """Stop every process given."""
    for process in processes:
        process.stop()
