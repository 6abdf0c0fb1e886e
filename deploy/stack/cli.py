"""`up`, `down`, `status`, `env` and the command line of deploy/localstack.py."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from permstore.deploy.stack.cassandra import bootstrap_roles, start_cassandra
from permstore.deploy.stack.config import (
    CASSANDRA_DC,
    HOST,
    TAIL_LINES,
    LocalStackError,
    Settings,
    say,
)
from permstore.deploy.stack.fetch import ensure_fetched, fetch, find_java
from permstore.deploy.stack.kafka import SASL_MARKER, start_kafka
from permstore.deploy.stack.passwords import ensure_password, write_compose_env_files
from permstore.deploy.stack.processes import (
    LogWatch,
    Server,
    find_venv_python,
    our_pid,
    pid_alive,
    port_open,
    probe,
    run_in_venv,
    servers,
    tail,
)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    settings.local_dir.mkdir(parents=True, exist_ok=True)
    with settings.lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another localstack run holds the lock; waiting for it ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclasses.dataclass
class _Pending:
    server: Server
    pid: int | None  # None: a server we did not start (reused as is)
    started_at: float
    deadline: float
    watch: LogWatch | None
    last_note: str = "starting"
    ready_after: float | None = None


def _fail(pending: _Pending, why: str) -> LocalStackError:
    text = tail(pending.server.log_file)
    return LocalStackError(
        f"{pending.server.name} {why}.\n--- last {TAIL_LINES} lines of "
        f"{pending.server.log_file} ---\n{text}\n---"
    )


def _wait_all(settings: Settings, pendings: list[_Pending]) -> None:
    waiting = [p for p in pendings if p.ready_after is None]
    while waiting:
        for p in waiting:
            if p.pid is not None and not pid_alive(p.pid):
                raise _fail(p, f"exited during start-up (pid {p.pid})")
        # One readiness run for every server whose log says it is up (or that has no log).
        logged = [p for p in waiting if p.watch is None or p.watch.seen()]
        verdicts = probe(settings, [p.server.name for p in logged]) if logged else {}
        for p in list(waiting):
            if p in logged:
                p.last_note = verdicts[p.server.name].note
                if verdicts[p.server.name].answers:
                    p.ready_after = time.monotonic() - p.started_at
                    say(f"{p.server.name}: ready after {p.ready_after:.1f}s ({p.last_note})")
                    waiting.remove(p)
                    continue
            else:
                p.last_note = f"waiting for {p.server.ready_line!r} in the log"
            if time.monotonic() > p.deadline:
                raise _fail(p, f"not ready after {p.deadline - p.started_at:.0f}s ({p.last_note})")
        if waiting:
            time.sleep(0.5)


SERVER_NAMES = ("cassandra", "kafka")


def _selected(only: Sequence[str] | None) -> tuple[str, ...]:
    """The server names to act on, in start order (Cassandra first: it is the slow one)."""
    return tuple(n for n in SERVER_NAMES if not only or n in only)


def up(settings: Settings, only: Sequence[str] | None = None) -> dict[str, float]:
    """Start (or reuse) Kafka and Cassandra, wait until ready, set up logins; return timings."""
    versions = ensure_fetched(settings)
    find_venv_python(settings)  # readiness and logins need it: fail now, not after a start
    java: Path | None = None  # looked up only if something has to be started
    for d in (settings.kafka_dir, settings.cassandra_dir, settings.logs_dir):
        d.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with _locked(settings):
        svs = servers(settings)
        starters = {"cassandra": start_cassandra, "kafka": start_kafka}
        timeouts = {"kafka": settings.kafka_timeout, "cassandra": settings.cassandra_timeout}
        pendings: list[_Pending] = []
        # On a node that already has its auth tables, a refused login will not heal by waiting.
        had_auth = (settings.cassandra_dir / "data" / "data" / "system_auth").exists()
        fresh_cassandra = False
        # Cassandra first: it is the slow one, Kafka's storage format overlaps with it.
        for name in _selected(only):
            server = svs[name]
            now = time.monotonic()
            pid = our_pid(server)
            if pid is not None:
                if name == "kafka":
                    _check_kafka_security(settings, pid)
                say(f"{name}: already running (pid {pid}), reusing it")
                pendings.append(_Pending(server, pid, now, now + timeouts[name], None))
                continue
            server.pid_file.unlink(missing_ok=True)
            if port_open(server.port):
                verdict = probe(settings, [name])[name]
                if not verdict.answers:
                    raise LocalStackError(
                        f"port {server.port} is in use by something that is not a working "
                        f"{name} ({verdict.note}); stop it or choose another port "
                        f"(PERMSTORE_{name.upper()}_PORT)"
                    )
                say(
                    f"{name}: a server not started by this script answers on port "
                    f"{server.port}; reusing it ({verdict.note})"
                )
                pendings.append(_Pending(server, None, now, now, None, verdict.note, 0.0))
                continue
            java = java or find_java(settings)
            pid = starters[name](settings, java, versions[name])
            fresh_cassandra = fresh_cassandra or (name == "cassandra" and not had_auth)
            watch = LogWatch(server.log_file, server.ready_line)
            pendings.append(_Pending(server, pid, now, now + timeouts[name], watch))
        try:
            _wait_all(settings, pendings)
        except LocalStackError:
            # Leave nothing half-started behind: the next `up` would only reuse a broken server.
            for p in pendings:
                if p.watch is not None and p.pid is not None and pid_alive(p.pid):
                    say(f"{p.server.name}: stopping pid {p.pid}, which did not become ready")
                    _terminate(p.pid, 30.0)
                    p.server.pid_file.unlink(missing_ok=True)
            raise
        for p in pendings:
            timings[f"{p.server.name}_ready_s"] = round(p.ready_after or 0.0, 1)
        cass = next((p for p in pendings if p.server.name == "cassandra"), None)
        if cass is not None:
            _set_up_logins(settings, cass, fresh_cassandra, timings)
        kafka = next((p for p in pendings if p.server.name == "kafka"), None)
        if kafka is not None and settings.kafka_sasl:
            _set_up_kafka_users(settings, kafka, timings)
    timings["total_s"] = round(time.monotonic() - t0, 1)
    say("up: " + ", ".join(f"{k}={v}" for k, v in timings.items()))
    return timings


def _set_up_logins(
    settings: Settings, cass: _Pending, fresh: bool, timings: dict[str, float]
) -> None:
    t_roles = time.monotonic()
    say("cassandra: checking the logins (permstore_admin, _processor, _api)")
    try:
        bootstrap_roles(settings, timeout=120.0 if fresh else 30.0)
    except LocalStackError as exc:
        raise _fail(cass, str(exc)) from None
    timings["cassandra_logins_s"] = round(time.monotonic() - t_roles, 1)
    timings["cassandra_ready_with_logins_s"] = round(time.monotonic() - cass.started_at, 1)


def _check_kafka_security(settings: Settings, pid: int) -> None:
    """Refuse to reuse a running broker whose listeners differ from the configured security."""
    props = settings.kafka_dir / "conf" / "server.properties"
    try:
        running = "SASL_PLAINTEXT" if SASL_MARKER in props.read_text() else "PLAINTEXT"
    except FileNotFoundError:
        return
    if running != settings.kafka_security_protocol:
        raise LocalStackError(
            f"kafka (pid {pid}) runs with {running} listeners but "
            f"{settings.kafka_security_protocol} is configured (PERMSTORE_KAFKA_SECURITY_PROTOCOL)"
            ": restart it with `down kafka` then `up kafka` (its data is kept)"
        )


def _set_up_kafka_users(settings: Settings, kafka: _Pending, timings: dict[str, float]) -> None:
    t_users = time.monotonic()
    say("kafka: checking the logins (permstore_admin, _processor, _api, _publisher)")
    for cred in settings.kafka_credentials().values():
        ensure_password(settings, cred)
    if run_in_venv(settings, "permstore.deploy.kafka_users", "--timeout", "60").returncode != 0:
        raise _fail(kafka, "could not set up the Kafka logins (see above)")
    timings["kafka_logins_s"] = round(time.monotonic() - t_users, 1)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM a process, SIGKILL it if it is still alive after `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def down(settings: Settings, only: Sequence[str] | None = None, timeout: float = 90.0) -> None:
    """Stop the servers this script started (SIGTERM, then SIGKILL after a bound)."""
    with _locked(settings):
        stopping: dict[str, tuple[Server, int]] = {}
        for name in _selected(only):
            server = servers(settings)[name]
            pid = our_pid(server)
            if pid is None:
                server.pid_file.unlink(missing_ok=True)
                extra = (
                    f" (port {server.port} answers: not ours, left alone)"
                    if port_open(server.port)
                    else ""
                )
                say(f"{name}: not running{extra}")
                continue
            say(f"{name}: stopping pid {pid} (SIGTERM)")
            os.kill(pid, signal.SIGTERM)
            stopping[name] = (server, pid)
        started = time.monotonic()
        while stopping:
            for name, (server, pid) in list(stopping.items()):
                if not pid_alive(pid):
                    say(f"{name}: stopped after {time.monotonic() - started:.1f}s")
                    server.pid_file.unlink(missing_ok=True)
                    del stopping[name]
                elif time.monotonic() - started > timeout:
                    say(f"{name}: still running after {timeout:.0f}s, sending SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    server.pid_file.unlink(missing_ok=True)
                    del stopping[name]
            if stopping:
                time.sleep(0.3)


def status(settings: Settings, only: Sequence[str] | None = None) -> dict[str, dict[str, object]]:
    """Running?, pid, port and readiness of each server."""
    names = _selected(only)
    verdicts = probe(settings, names)
    report: dict[str, dict[str, object]] = {}
    for name in names:
        server = servers(settings)[name]
        pid = our_pid(server)
        verdict = verdicts[name]
        report[name] = {
            "running": pid is not None or port_open(server.port),
            "ours": pid is not None,
            "pid": pid,
            "port": server.port,
            "ready": verdict.ready,
            "note": verdict.note,
            "log": str(server.log_file),
        }
    return report


def env_exports(settings: Settings) -> list[str]:
    """Shell `export` lines with connection settings and secret file paths (no secrets)."""
    values: dict[str, str] = {
        # Read by adapters/settings.py (prefix PERMSTORE_).
        "PERMSTORE_KAFKA_BOOTSTRAP": f"{HOST}:{settings.kafka_port}",
        "PERMSTORE_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "PERMSTORE_LOCAL_DIR": str(settings.local_dir),
        "PERMSTORE_CASSANDRA_HOSTS": HOST,
        "PERMSTORE_CASSANDRA_PORT": str(settings.cassandra_port),
        "PERMSTORE_CASSANDRA_LOCAL_DC": CASSANDRA_DC,
    }
    # Where each login's password is (the services find these files by themselves too).
    for cred in settings.credentials().values():
        prefix = f"PERMSTORE_CASSANDRA_{cred.key.upper()}"
        values[f"{prefix}_USER"] = cred.role
        values[f"{prefix}_PASSWORD_FILE"] = str(cred.file)
    for cred in settings.kafka_credentials().values() if settings.kafka_sasl else ():
        prefix = f"PERMSTORE_KAFKA_{cred.key.upper()}"
        values[f"{prefix}_USER"] = cred.role
        values[f"{prefix}_PASSWORD_FILE"] = str(cred.file)
    return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


def _print_status(report: Mapping[str, Mapping[str, object]]) -> None:
    for name, row in report.items():
        running = "running" if row["running"] else "stopped"
        owner = "" if row["ours"] or not row["running"] else " (not started by us)"
        pid = row["pid"] if row["pid"] is not None else "-"
        ready = "ready" if row["ready"] else "not ready"
        print(
            f"{name:<10} {running}{owner:<20} pid {pid!s:<8} port {row['port']!s:<6} "
            f"{ready:<10} {row['note']}",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="localstack", description="Local Kafka + Cassandra for permstore (no Docker)."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="fetch the jars with Maven into the cache (once)")
    help_which = "kafka and/or cassandra (default: both)"
    up_p = sub.add_parser("up", help="start (or reuse) the servers, wait until ready")
    down_p = sub.add_parser("down", help="stop the servers this script started")
    st = sub.add_parser("status", help="running?, pid, port, ready? (exit 0 only if all ready)")
    for p in (up_p, down_p, st):
        p.add_argument("servers", nargs="*", metavar="SERVER", help=help_which)
    st.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("env", help="print shell exports of connection settings (no secrets)")
    sub.add_parser(
        "secrets", help="create missing password files and .local/compose/*.env (docker compose)"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in getattr(args, "servers", []) if n not in SERVER_NAMES]
    if unknown:
        parser.error(f"unknown server {', '.join(unknown)} (choose from kafka, cassandra)")
    try:
        settings = Settings.from_env()
        if args.cmd == "fetch":
            fetch(settings)
        elif args.cmd == "up":
            up(settings, args.servers)
        elif args.cmd == "down":
            down(settings, args.servers)
        elif args.cmd == "status":
            report = status(settings, args.servers)
            if args.json:
                print(json.dumps(report, indent=2), flush=True)
            else:
                _print_status(report)
            return 0 if all(row["ready"] for row in report.values()) else 1
        elif args.cmd == "secrets":
            kafka = settings.kafka_credentials().values() if settings.kafka_sasl else ()
            for cred in [*settings.credentials().values(), *kafka]:
                ensure_password(settings, cred)
                say(f"{cred.role}: {cred.file}")
            for path in write_compose_env_files(settings):
                say(f"compose env file: {path}")
        elif args.cmd == "env":
            print("\n".join(env_exports(settings)), flush=True)
    except LocalStackError as exc:
        print(f"localstack: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("localstack: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0
