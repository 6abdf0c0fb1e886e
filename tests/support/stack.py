"""Real servers and our own processes for integration and e2e tests.

Kafka and Cassandra are always real: testcontainers when a Docker engine answers a ping
(or PERMSTORE_TEST_SERVERS=docker), else the local jars started by deploy/localstack.py.
Tests use their own topic, keyspace and consumer group so they never disturb `make run`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from permstore.adapters.settings import LOCAL_DIR, REPO_ROOT
from permstore.deploy import harness
from permstore.deploy.harness import free_port, wait_ready

REPO = REPO_ROOT
LOGS = LOCAL_DIR / "logs" / "tests"
__all__ = ["REPO", "ManagedProcess", "StackEnvironment", "free_port", "wait_ready"]


def docker_engine_answers() -> bool:
    """True when a Docker daemon answers a ping (the client binary alone is not enough)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


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
    env.update(harness.namespace_env(suffix))
    env.update(
        {
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
    subprocess.run(harness.bootstrap_command(), check=True, cwd=REPO, env=env, timeout=120)
    return StackEnvironment(env=env, api_port=free_port(), containers=containers)


def drop_test_data(env: dict[str, str]) -> None:
    """Start each session from an empty test topic and keyspace, so comparisons are exact."""
    from permstore.services.ops import drop_data

    drop_data(harness.namespace_settings(env))


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


class ManagedProcess(harness.ManagedProcess):
    """A processor or API process that tests can start, kill and restart."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        namespace = env.get("PERMSTORE_CASSANDRA_KEYSPACE", "permstore")
        super().__init__(name, command, env, LOGS / f"{namespace}-{name}.log")


def processor(env: dict[str, str], name: str = "processor") -> ManagedProcess:
    """A stream processor process."""
    return ManagedProcess(name, harness.processor_command(), env)


def api(env: dict[str, str], port: int, name: str = "api") -> ManagedProcess:
    """An API process on a loopback port."""
    return ManagedProcess(name, harness.api_command(port), env)


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


def stop_all(processes: Iterator[ManagedProcess] | list[ManagedProcess]) -> None:
    """Stop every process given."""
    for process in processes:
        process.stop()
