"""The one process harness: loopback ports, namespaces, our managed processes, their commands.

Shared by the tests (tests/support/stack.py), the benchmarks (bench/stack.py) and `make run`'s
supervisor (deploy/run_stack.py), so each starts the processor and the API the same way.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from permstore.adapters.settings import REPO_ROOT, Settings

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def namespace_env(name: str) -> dict[str, str]:
    """The variables that give one deployment its own topics, keyspace and consumer group."""
    return {
        "PERMSTORE_EVENTS_TOPIC": f"permstore.{name}.events",
        "PERMSTORE_DLQ_TOPIC": f"permstore.{name}.events.dlq",
        "PERMSTORE_USAGE_TOPIC": f"permstore.{name}.usage",
        "PERMSTORE_CHANGES_TOPIC": f"permstore.{name}.changes",
        "PERMSTORE_VIEW_UPDATES_TOPIC": f"permstore.{name}.view-updates",
        "PERMSTORE_CASSANDRA_KEYSPACE": f"permstore_{name}",
        "PERMSTORE_PROCESSOR_GROUP": f"permstore-{name}-processor",
    }


def namespace_settings(env: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings as a namespace's processes see them (the namespace variables of env)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": env.get("PERMSTORE_KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
        "events_topic": env["PERMSTORE_EVENTS_TOPIC"],
        "dlq_topic": env["PERMSTORE_DLQ_TOPIC"],
        "usage_topic": env.get("PERMSTORE_USAGE_TOPIC", "permstore.usage"),
        "changes_topic": env.get("PERMSTORE_CHANGES_TOPIC", "permstore.changes"),
        "view_updates_topic": env.get("PERMSTORE_VIEW_UPDATES_TOPIC", "permstore.view-updates"),
        "cassandra_keyspace": env["PERMSTORE_CASSANDRA_KEYSPACE"],
        "processor_group": env["PERMSTORE_PROCESSOR_GROUP"],
    }
    values.update(overrides)
    return Settings(**values)


def bootstrap_command() -> list[str]:
    """Create topics, ACLs, keyspace, migrations and the first generation (idempotent)."""
    return [sys.executable, "-m", "permstore.adapters.bootstrap"]


def processor_command() -> list[str]:
    """The stream processor."""
    return [sys.executable, "-m", "permstore.streams.main"]


def api_command(port: int, workers: int | None = None, log_level: str | None = None) -> list[str]:
    """The API under uvicorn on a loopback port."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "permstore.services.api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    command.append("--no-access-log")
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


class ManagedProcess:
    """One of our processes, run from the repository root with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path

    def start(self) -> None:
        """Start the process, appending to its log."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL past the bound. Returns the exit code when it exited."""
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


def wait_ready(url: str, process: ManagedProcess, timeout: float = 90, streak: int = 1) -> None:
    """Wait until /readyz answers 200 `streak` times in a row while the process lives."""
    deadline = time.monotonic() + timeout
    last = ""
    seen = 0
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} died:\n{process.log_tail()}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=3)
            seen = seen + 1 if response.status_code == 200 else 0
            if seen >= streak:
                return
            last = response.text
        except httpx.HTTPError as exc:
            seen, last = 0, repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{process.name} not ready: {last}\n{process.log_tail()}")
