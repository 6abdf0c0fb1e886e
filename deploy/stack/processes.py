"""Local server processes: pid files, detached launch, logs, readiness probes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from permstore.deploy.stack.config import (
    CASSANDRA_MAIN,
    CASSANDRA_READY_LINE,
    HOST,
    KAFKA_MAIN,
    KAFKA_READY_LINE,
    TAIL_LINES,
    LocalStackError,
    Settings,
)


def find_venv_python(settings: Settings) -> str:
    """A Python with aiokafka and cassandra-driver: PERMSTORE_PYTHON, the repo venv, or this."""
    explicit = settings.env.get("PERMSTORE_PYTHON", "").strip()
    if explicit:
        return explicit
    venv = settings.repo / ".venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    probe = subprocess.run(
        [sys.executable, "-c", "import aiokafka, cassandra.cluster"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return sys.executable
    raise LocalStackError(
        "no Python with aiokafka and cassandra-driver to check the servers: create the venv "
        "first (`make venv`) or set PERMSTORE_PYTHON"
    )


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One server's readiness, as deploy/readiness.py reports it."""

    ready: bool  # Kafka lists a broker; Cassandra answers a query as one of our logins
    answers: bool  # speaks its protocol: enough for `up` (Cassandra's logins come after)
    note: str


def run_in_venv(
    settings: Settings, module: str, *args: str, timeout: float | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `python -m module args` with the venv's Python, from the repo, with our settings."""
    env = dict(settings.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.repo), env.get("PYTHONPATH")) if p)
    env["PERMSTORE_LOCAL_DIR"] = str(settings.local_dir)
    cmd = [find_venv_python(settings), "-m", module, *args]
    return subprocess.run(
        cmd,
        cwd=settings.repo,
        env=env,
        timeout=timeout,
        capture_output=capture,
        text=True,
        check=False,
    )


def probe(settings: Settings, names: Sequence[str], timeout: float = 5.0) -> dict[str, Verdict]:
    """Each server's readiness: a TCP check, then deploy.readiness in the venv if it is open."""
    closed = [n for n in names if not port_open(servers(settings)[n].port)]
    verdicts = {n: Verdict(False, False, "port closed") for n in closed}
    asked = [n for n in names if n not in closed]
    if not asked:
        return verdicts
    try:
        out = run_in_venv(
            settings,
            "permstore.deploy.readiness",
            *asked,
            f"--timeout={timeout}",
            timeout=8 * timeout + 15,
            capture=True,
        )
        answer = json.loads(out.stdout)
        return verdicts | {n: Verdict(**answer[n]) for n in asked}
    except LocalStackError as exc:  # no venv
        note = f"port open; {exc}"
    except subprocess.TimeoutExpired:
        note = "readiness check timed out"
    except (json.JSONDecodeError, KeyError, TypeError):
        note = "readiness check failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]
    return verdicts | {n: Verdict(False, False, note) for n in asked}


@dataclasses.dataclass(frozen=True)
class Server:
    """One local server as this script knows it."""

    name: str
    port: int
    main_class: str
    ready_line: str
    pid_file: Path
    log_file: Path
    config_marker: str  # a path on its command line that makes it ours


def servers(settings: Settings) -> dict[str, Server]:
    """Kafka and Cassandra, with their pid files, logs and ports."""
    return {
        "kafka": Server(
            name="kafka",
            port=settings.kafka_port,
            main_class=KAFKA_MAIN,
            ready_line=KAFKA_READY_LINE,
            pid_file=settings.kafka_dir / "kafka.pid",
            log_file=settings.logs_dir / "kafka.log",
            config_marker=str(settings.kafka_dir / "conf"),
        ),
        "cassandra": Server(
            name="cassandra",
            port=settings.cassandra_port,
            main_class=CASSANDRA_MAIN,
            ready_line=CASSANDRA_READY_LINE,
            pid_file=settings.cassandra_dir / "cassandra.pid",
            log_file=settings.logs_dir / "cassandra.log",
            config_marker=str(settings.cassandra_dir / "conf"),
        ),
    }


def _process_cmdline(pid: int) -> str | None:
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[-1].split()[0] == "Z":
                return None  # zombie: dead
            return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    if sys.platform.startswith("linux"):
        return None
    out = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or None


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _process_cmdline(pid) is not None


def our_pid(server: Server) -> int | None:
    """The pid from the server's pid file if that process is alive and is really ours."""
    try:
        pid = int(server.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    cmdline = _process_cmdline(pid)
    if cmdline and server.main_class in cmdline and server.config_marker in cmdline:
        return pid
    return None


def rotate_log(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        path.replace(path.with_name(path.name + ".1"))


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a text file (empty if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


# `sh` starts the JVM in the background and exits at once, so the JVM is re-parented to init
# (no zombie, no ResourceWarning when this module is used from a test process) and, being a
# background job of a non-interactive shell in a new session, ignores the terminal's Ctrl-C.
_LAUNCH = 'log="$1"; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'


def launch_detached(
    cmd: Sequence[str],
    log_file: Path,
    cwd: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a command detached from this process; stdout+stderr to log_file; write its pid."""
    out = subprocess.run(
        ["sh", "-c", _LAUNCH, "sh", str(log_file), *cmd],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise LocalStackError(f"could not start {cmd[0]}: {out.stderr.strip()}")
    pid = int(out.stdout.strip())
    pid_file.write_text(f"{pid}\n")
    return pid


class LogWatch:
    """Incrementally looks for one line in a growing log file."""

    def __init__(self, path: Path, needle: str) -> None:
        self.path = path
        self.needle = needle.encode()
        self.pos = 0
        self.carry = b""
        self.found = False

    def seen(self) -> bool:
        if self.found:
            return True
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.pos)
                chunk = handle.read()
        except FileNotFoundError:
            return False
        self.pos += len(chunk)
        data = self.carry + chunk
        self.found = self.needle in data
        self.carry = data[-len(self.needle) :]
        return self.found
