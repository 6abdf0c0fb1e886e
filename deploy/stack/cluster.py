"""A local replicated cluster: 3 Kafka brokers (KRaft, 3 controllers), 3 Cassandra nodes, and
permstore's processors and API processes, all on loopback addresses 127.0.0.1-3.

It shares nothing with the single node of `deploy/localstack.py`: other ports (Kafka
19092-19094, controllers 19192-19194, CQL 19042 and storage 17000 on each address, JMX
17199/17299/17399, API 18081-, processor metrics 19108-), its own data, logs, pid files and
passwords under `.local/cluster/`, its own lock. Cassandra nodes join one at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from permstore.deploy.stack.cassandra import CassandraNode, _cassandra_command
from permstore.deploy.stack.config import (
    CASSANDRA_DC,
    CASSANDRA_MAIN,
    CASSANDRA_READY_LINE,
    KAFKA_MAIN,
    KAFKA_READY_LINE,
    REPO_ROOT,
    LocalStackError,
    Settings,
    say,
)
from permstore.deploy.stack.fetch import ensure_fetched, find_java
from permstore.deploy.stack.kafka import (
    KafkaNode,
    _kafka_command,
    _new_kafka_cluster_id,
    format_storage,
)
from permstore.deploy.stack.passwords import ensure_password
from permstore.deploy.stack.processes import (
    LogWatch,
    Server,
    find_venv_python,
    launch_detached,
    our_pid,
    pid_alive,
    port_open,
    rotate_log,
    run_in_venv,
    tail,
)

SIZE = 3
KAFKA_PORT = 19092  # node i listens on KAFKA_PORT + i - 1 at 127.0.0.i
CONTROLLER_PORT = 19192
CQL_PORT = 19042  # the same port on every node's own address (the driver needs one port)
STORAGE_PORT = 17000
JMX_PORT = 17199  # node i: JMX_PORT + 100 * (i - 1), JMX listens on 127.0.0.1 only
API_PORT = 18081
PROCESSOR_METRICS_PORT = 19108
# Evenly spaced Murmur3 tokens, one per node: with RF 3 every node holds every row anyway,
# but fixed tokens make the ring the same on every fresh start.
TOKENS = ("-9223372036854775808", "-3074457345618258603", "3074457345618258602")
KAFKA_START_TIMEOUT = 180.0
CASSANDRA_JOIN_TIMEOUT = 420.0  # one node joining on a loaded 2-core machine
APP_START_TIMEOUT = 120.0
AUTH_MARKER = "auth-replicated"


@dataclasses.dataclass(frozen=True)
class Node:
    """One machine of the cluster: a broker+controller and a Cassandra node on one address."""

    index: int
    host: str
    kafka_port: int
    controller_port: int
    jmx_port: int
    settings: Settings  # its folders (`<cluster>/node<i>/...`) and ports

    @property
    def kafka(self) -> Server:
        """This node's broker."""
        d = self.settings.kafka_dir
        return Server(
            f"kafka{self.index}",
            self.kafka_port,
            KAFKA_MAIN,
            KAFKA_READY_LINE,
            d / "kafka.pid",
            self.settings.logs_dir / "kafka.log",
            str(d / "conf"),
        )

    @property
    def cassandra(self) -> Server:
        """This node's Cassandra."""
        d = self.settings.cassandra_dir
        return Server(
            f"cassandra{self.index}",
            CQL_PORT,
            CASSANDRA_MAIN,
            CASSANDRA_READY_LINE,
            d / "cassandra.pid",
            self.settings.logs_dir / "cassandra.log",
            str(d / "conf"),
        )


@dataclasses.dataclass(frozen=True)
class App:
    """One permstore process of the cluster (a processor or an API process)."""

    name: str
    port: int  # the API's HTTP port or the processor's metrics port
    command: tuple[str, ...]
    marker: str  # on its command line
    pid_file: Path
    log_file: Path
    env: Mapping[str, str]

    @property
    def server(self) -> Server:
        """The process as a Server, for the pid-file checks."""
        return Server(self.name, self.port, self.marker, "", self.pid_file, self.log_file, "")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The whole local cluster."""

    dir: Path
    settings: Settings  # logins (`<cluster>/secrets`) and node 1's ports, for the tools
    nodes: tuple[Node, ...]
    processors: int
    apis: int

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker, as clients are told."""
        return ",".join(f"{n.host}:{n.kafka_port}" for n in self.nodes)

    @property
    def cassandra_hosts(self) -> str:
        """Every Cassandra node's address (CQL port CQL_PORT)."""
        return ",".join(n.host for n in self.nodes)

    def app_env(self) -> dict[str, str]:
        """PERMSTORE_* settings of permstore's own processes on this cluster (no secrets)."""
        return {
            "PERMSTORE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PERMSTORE_KAFKA_SECURITY_PROTOCOL": self.settings.kafka_security_protocol,
            "PERMSTORE_KAFKA_REPLICATION_FACTOR": str(SIZE),
            "PERMSTORE_KAFKA_MIN_INSYNC_REPLICAS": str(SIZE - 1),
            "PERMSTORE_CASSANDRA_HOSTS": self.cassandra_hosts,
            "PERMSTORE_CASSANDRA_PORT": str(CQL_PORT),
            "PERMSTORE_CASSANDRA_REPLICATION_FACTOR": str(SIZE),
            "PERMSTORE_CASSANDRA_LOCAL_DC": CASSANDRA_DC,
            "PERMSTORE_CASSANDRA_SPECULATIVE_DELAY_MS": "250",
            "PERMSTORE_LOCAL_DIR": str(self.dir),
            "PERMSTORE_FAUST_DATADIR": str(self.dir / "faust"),
        }

    def apps(self) -> list[App]:
        """The processors (one consumer group) and the API processes."""
        python = self.settings.env.get("PERMSTORE_PYTHON") or find_venv_python(self.settings)
        base = {**self.settings.env, **self.app_env()}
        out: list[App] = []
        for i in range(1, self.processors + 1):
            port = PROCESSOR_METRICS_PORT + i - 1
            out.append(
                App(
                    f"processor{i}",
                    port,
                    (python, "-m", "permstore.streams.main"),
                    "permstore.streams.main",
                    self.dir / "procs" / f"processor{i}.pid",
                    self.dir / "logs" / f"processor{i}.log",
                    {**base, "PERMSTORE_PROCESSOR_METRICS_PORT": str(port)},
                )
            )
        for i in range(1, self.apis + 1):
            port = API_PORT + i - 1
            cmd = (
                python,
                "-m",
                "uvicorn",
                "permstore.services.api.main:app",
                "--host",
                "127.0.0.1",
            )
            out.append(
                App(
                    f"api{i}",
                    port,
                    (*cmd, "--port", str(port), "--workers", "1", "--no-access-log"),
                    f"--port {port}",
                    self.dir / "procs" / f"api{i}.pid",
                    self.dir / "logs" / f"api{i}.log",
                    base,
                )
            )
        return out


def _node_env(env: Mapping[str, str], node_dir: Path, index: int) -> dict[str, str]:
    jvm = env.get("PERMSTORE_CASSANDRA_JVM_OPTS", "")
    return {
        **env,
        "PERMSTORE_LOCAL_DIR": str(node_dir),
        "PERMSTORE_KAFKA_PORT": str(KAFKA_PORT + index - 1),
        "PERMSTORE_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT + index - 1),
        "PERMSTORE_CASSANDRA_JMX_PORT": str(JMX_PORT + 100 * (index - 1)),
        # A joining node must hear the ring before it picks its ranges (the single node skips
        # this wait); the later -D wins over _cassandra_command's own.
        "PERMSTORE_CASSANDRA_JVM_OPTS": f"-Dcassandra.ring_delay_ms=5000 {jvm}".strip(),
    }


def cluster_from_env(env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster as PERMSTORE_CLUSTER_* (and the shared PERMSTORE_*) variables describe it."""
    e = dict(os.environ if env is None else env)
    folder = Path(e.get("PERMSTORE_CLUSTER_DIR") or REPO_ROOT / ".local" / "cluster").resolve()
    shared = {
        **e,
        "PERMSTORE_LOCAL_DIR": str(folder),
        "PERMSTORE_KAFKA_PORT": str(KAFKA_PORT),
        "PERMSTORE_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "PERMSTORE_CASSANDRA_PORT": str(CQL_PORT),
        "PERMSTORE_CASSANDRA_STORAGE_PORT": str(STORAGE_PORT),
        "PERMSTORE_CASSANDRA_JMX_PORT": str(JMX_PORT),
        "PERMSTORE_KAFKA_HEAP": e.get("PERMSTORE_CLUSTER_KAFKA_HEAP", "512m"),
        "PERMSTORE_CASSANDRA_HEAP": e.get("PERMSTORE_CLUSTER_CASSANDRA_HEAP", "768m"),
    }
    settings = Settings.from_env(shared)
    nodes = tuple(
        Node(
            index=i,
            host=f"127.0.0.{i}",
            kafka_port=KAFKA_PORT + i - 1,
            controller_port=CONTROLLER_PORT + i - 1,
            jmx_port=JMX_PORT + 100 * (i - 1),
            settings=Settings.from_env(_node_env(shared, folder / f"node{i}", i)),
        )
        for i in range(1, SIZE + 1)
    )
    return Cluster(
        dir=folder,
        settings=settings,
        nodes=nodes,
        processors=int(e.get("PERMSTORE_CLUSTER_PROCESSORS", "2")),
        apis=int(e.get("PERMSTORE_CLUSTER_APIS", "2")),
    )


# --------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------


def _voters(cluster: Cluster) -> str:
    return ",".join(f"{n.index}@{n.host}:{n.controller_port}" for n in cluster.nodes)


def _format_kafka(cluster: Cluster, node: Node, java: Path, props: Path) -> None:
    """Format a broker's storage once, with the cluster's id and its SCRAM logins."""
    data = node.settings.kafka_dir / "data"
    if (data / "meta.properties").exists():
        return
    id_file = cluster.dir / "kafka-cluster.id"
    if not id_file.exists():
        id_file.write_text(_new_kafka_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    scram: list[str] = []
    if cluster.settings.kafka_sasl:
        # Brokers replicate to each other as permstore_admin over SCRAM, so the logins must be
        # in the metadata log from the start (the single node needs no broker-to-broker login).
        for cred in cluster.settings.kafka_credentials().values():
            password = ensure_password(cluster.settings, cred)
            scram += ["--add-scram", f"SCRAM-SHA-512=[name={cred.role},password={password}]"]
    say(f"kafka{node.index}: formatting storage in {data} (cluster id {cluster_id})")
    format_storage(node.settings, java, props, cluster_id, f"kafka{node.index}", scram)


def start_kafka_node(cluster: Cluster, node: Node, java: Path, version: str) -> int:
    """Write one broker's config, format its storage once, start it detached; its pid."""
    for port in (node.kafka_port, node.controller_port):
        if port_open(port, node.host):
            raise LocalStackError(f"{node.host}:{port} is already in use by another program")
    major = int(version.split(".")[0]) if version[:1].isdigit() else 3
    spec = KafkaNode(node_id=node.index, host=node.host, voters=_voters(cluster), replicas=SIZE)
    jvm, props = _kafka_command(node.settings, java, major, spec, login_settings=cluster.settings)
    _format_kafka(cluster, node, java, props)
    server = node.kafka
    rotate_log(server.log_file)
    pid = launch_detached(
        [*jvm, KAFKA_MAIN, str(props)], server.log_file, node.settings.kafka_dir, server.pid_file
    )
    say(f"kafka{node.index} {version}: started pid {pid} on {node.host}:{node.kafka_port}")
    return pid


# --------------------------------------------------------------------------------------
# Cassandra
# --------------------------------------------------------------------------------------


def start_cassandra_node(cluster: Cluster, node: Node, java: Path, version: str) -> int:
    """Write one node's config and start it detached; its pid."""
    taken = [
        f"{host}:{port}"
        for host, port in (
            (node.host, CQL_PORT),
            (node.host, STORAGE_PORT),
            ("127.0.0.1", node.jmx_port),
        )
        if port_open(port, host)
    ]
    if taken:
        raise LocalStackError(f"cassandra{node.index}: {', '.join(taken)} already in use")
    spec = CassandraNode(
        host=node.host,
        seeds=f"{cluster.nodes[0].host}:{STORAGE_PORT}",
        cluster_name="permstore-cluster",
        initial_token=TOKENS[node.index - 1],
        hints=True,
    )
    cmd = _cassandra_command(node.settings, java, spec)
    server = node.cassandra
    rotate_log(server.log_file)
    pid = launch_detached(cmd, server.log_file, node.settings.cassandra_dir, server.pid_file)
    say(f"cassandra{node.index} {version}: started pid {pid} on {node.host}:{CQL_PORT}")
    return pid


# --------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------


def _wait(server: Server, host: str, pid: int, timeout: float, watch: LogWatch | None) -> float:
    """Wait until a started server logged its ready line and opened its port; seconds taken."""
    started = time.monotonic()
    while True:
        if not pid_alive(pid):
            raise LocalStackError(
                f"{server.name} exited during start-up (pid {pid}).\n--- {server.log_file} ---\n"
                f"{tail(server.log_file)}\n---"
            )
        if (watch is None or watch.seen()) and port_open(server.port, host):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise LocalStackError(
                f"{server.name} not ready after {timeout:.0f}s.\n--- {server.log_file} ---\n"
                f"{tail(server.log_file)}\n---"
            )
        time.sleep(0.5)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# up / down / status / kill
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(cluster: Cluster) -> Iterator[None]:
    import fcntl

    cluster.dir.mkdir(parents=True, exist_ok=True)
    with (cluster.dir / "cluster.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another cluster run holds the lock; waiting for it ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _selected(cluster: Cluster, only: Sequence[str] | None, prefix: str) -> list[Node]:
    return [n for n in cluster.nodes if not only or f"{prefix}{n.index}" in only or prefix in only]


def _up_kafka(cluster: Cluster, only: Sequence[str] | None, java: Path, version: str) -> None:
    started: list[tuple[Node, int, LogWatch]] = []
    for node in _selected(cluster, only, "kafka"):
        if our_pid(node.kafka) is not None:
            continue
        pid = start_kafka_node(cluster, node, java, version)
        started.append((node, pid, LogWatch(node.kafka.log_file, KAFKA_READY_LINE)))
    # All at once: a broker+controller only finishes starting once the quorum has a leader.
    for node, pid, watch in started:
        took = _wait(node.kafka, node.host, pid, KAFKA_START_TIMEOUT, watch)
        say(f"kafka{node.index}: ready after {took:.1f}s")


def _up_cassandra(cluster: Cluster, only: Sequence[str] | None, java: Path, version: str) -> None:
    marker = cluster.dir / AUTH_MARKER
    for node in _selected(cluster, only, "cassandra"):
        if our_pid(node.cassandra) is None:
            pid = start_cassandra_node(cluster, node, java, version)
            watch = LogWatch(node.cassandra.log_file, CASSANDRA_READY_LINE)
            # One at a time: Cassandra refuses two nodes bootstrapping together.
            took = _wait(node.cassandra, node.host, pid, CASSANDRA_JOIN_TIMEOUT, watch)
            say(f"cassandra{node.index}: joined after {took:.1f}s")
        if node.index == 1 and not marker.exists():
            # While the first node is alone: the nodes that join next then stream the logins
            # (the default superuser's row included) with their share of system_auth.
            args = ("--host", node.host, "--port", str(CQL_PORT), "--replicas", str(SIZE))
            if (
                run_in_venv(cluster.settings, "permstore.deploy.cluster_auth", *args).returncode
                != 0
            ):
                raise LocalStackError("could not replicate system_auth (see above)")
            marker.write_text("3\n")


def _set_up_logins_and_schema(cluster: Cluster) -> None:
    first = cluster.nodes[0]
    roles = ("--host", first.host, "--port", str(CQL_PORT), "--timeout", "180")
    if run_in_venv(cluster.settings, "permstore.deploy.cassandra_roles", *roles).returncode != 0:
        raise LocalStackError("could not set up the Cassandra logins (see above)")
    if cluster.settings.kafka_sasl:
        users = run_in_venv(cluster.settings, "permstore.deploy.kafka_users", "--timeout", "60")
        if users.returncode != 0:
            raise LocalStackError("could not set up the Kafka logins (see above)")
    boot = dataclasses.replace(cluster.settings, env={**cluster.settings.env, **cluster.app_env()})
    if run_in_venv(boot, "permstore.adapters.bootstrap").returncode != 0:
        raise LocalStackError("adapters.bootstrap failed on the cluster (see above)")


def start_app(app: App) -> int:
    """Start one processor or API process detached; its pid."""
    app.pid_file.parent.mkdir(parents=True, exist_ok=True)
    app.log_file.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(app.log_file)
    env = {**app.env, "PYTHONPATH": str(REPO_ROOT)}
    pid = launch_detached(list(app.command), app.log_file, REPO_ROOT, app.pid_file, env)
    say(f"{app.name}: started pid {pid}, log {app.log_file}")
    return pid


def _wait_app(app: App, pid: int) -> float:
    started = time.monotonic()
    url = f"http://127.0.0.1:{app.port}/" + ("healthz" if app.name.startswith("api") else "")
    while not (port_open(app.port) and _http_ok(url)):
        if not pid_alive(pid):
            raise LocalStackError(f"{app.name} exited at start:\n{tail(app.log_file)}")
        if time.monotonic() - started > APP_START_TIMEOUT:
            raise LocalStackError(f"{app.name} not ready after {APP_START_TIMEOUT:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - started


def _up_apps(cluster: Cluster, only: Sequence[str] | None) -> None:
    started = []
    for app in cluster.apps():
        if only and app.name not in only and app.name.rstrip("0123456789") not in only:
            continue
        if our_pid(app.server) is None:
            started.append((app, start_app(app)))
    for app, pid in started:
        say(f"{app.name}: ready after {_wait_app(app, pid):.1f}s")


def up(cluster: Cluster, only: Sequence[str] | None = None, apps: bool = True) -> float:
    """Start whatever part of the cluster is not running (all of it by default); seconds."""
    t0 = time.monotonic()
    versions = ensure_fetched(cluster.settings)
    find_venv_python(cluster.settings)
    with _locked(cluster):
        for cred in [
            *cluster.settings.credentials().values(),
            *cluster.settings.kafka_credentials().values(),
        ]:
            ensure_password(cluster.settings, cred)
        need_java = any(our_pid(s) is None for n in cluster.nodes for s in (n.kafka, n.cassandra))
        java = find_java(cluster.settings) if need_java else Path("java")
        servers_asked = not only or any(o.startswith(("kafka", "cassandra")) for o in only)
        if servers_asked:
            _up_kafka(cluster, only, java, versions["kafka"])
            _up_cassandra(cluster, only, java, versions["cassandra"])
        if not only:
            _set_up_logins_and_schema(cluster)
        if apps:
            _up_apps(cluster, only)
    took = time.monotonic() - t0
    say(f"cluster up after {took:.1f}s; memory {rss_mb(cluster):.0f} MB RSS")
    return took


def _everything(cluster: Cluster) -> list[Server]:
    return [
        *(a.server for a in cluster.apps()),
        *(n.kafka for n in cluster.nodes),
        *(n.cassandra for n in cluster.nodes),
    ]


def kill(cluster: Cluster, name: str, sig: int = signal.SIGKILL) -> int:
    """Send a signal (SIGKILL by default) to one part, e.g. cassandra2, kafka3, processor1."""
    for server in _everything(cluster):
        if server.name == name:
            pid = our_pid(server)
            if pid is None:
                raise LocalStackError(f"{name} is not running")
            os.kill(pid, sig)
            return pid
    raise LocalStackError(f"no part named {name}")


def down(cluster: Cluster, timeout: float = 90.0) -> None:
    """Stop every part this script started: apps first, then brokers, then Cassandra."""
    groups = [
        [a.server for a in cluster.apps()],
        [n.kafka for n in cluster.nodes],
        [n.cassandra for n in cluster.nodes],
    ]
    with _locked(cluster):
        for group in groups:
            stopping = {}
            for server in group:
                pid = our_pid(server)
                if pid is not None:
                    say(f"{server.name}: stopping pid {pid} (SIGTERM)")
                    os.kill(pid, signal.SIGTERM)
                    stopping[server.name] = (server, pid)
                else:
                    server.pid_file.unlink(missing_ok=True)
            started = time.monotonic()
            while stopping:
                for name, (server, pid) in list(stopping.items()):
                    if not pid_alive(pid):
                        server.pid_file.unlink(missing_ok=True)
                        del stopping[name]
                    elif time.monotonic() - started > timeout:
                        say(f"{name}: still running after {timeout:.0f}s, SIGKILL")
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        server.pid_file.unlink(missing_ok=True)
                        del stopping[name]
                time.sleep(0.3)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_mb(cluster: Cluster) -> float:
    """Resident memory of every running part of the cluster, in MB."""
    pids = [our_pid(s) for s in _everything(cluster)]
    return sum(_rss_kb(p) for p in pids if p is not None) / 1024


def status(cluster: Cluster) -> dict[str, dict[str, object]]:
    """Each part: pid (or None), address, port open, resident memory."""
    hosts = {n.kafka.name: n.host for n in cluster.nodes} | {
        n.cassandra.name: n.host for n in cluster.nodes
    }
    report: dict[str, dict[str, object]] = {}
    for server in _everything(cluster):
        pid = our_pid(server)
        host = hosts.get(server.name, "127.0.0.1")
        report[server.name] = {
            "pid": pid,
            "address": f"{host}:{server.port}",
            "open": port_open(server.port, host),
            "rss_mb": round(_rss_kb(pid) / 1024) if pid else 0,
            "log": str(server.log_file),
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of deploy/cluster.py."""
    import argparse

    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up_p = sub.add_parser("up", help="start what is not running (all by default), wait")
    up_p.add_argument("parts", nargs="*", help="e.g. cassandra2 kafka3 processor1 (default: all)")
    up_p.add_argument("--no-apps", action="store_true", help="servers only")
    sub.add_parser("down", help="stop everything this script started")
    st = sub.add_parser("status", help="pid, address, port open?, RSS of every part")
    st.add_argument("--json", action="store_true")
    sub.add_parser("env", help="shell exports for clients of the cluster (no secrets)")
    kill_p = sub.add_parser("kill", help="SIGKILL one part (node-loss drills)")
    kill_p.add_argument("part")
    args = parser.parse_args(argv)
    try:
        cluster = cluster_from_env()
        if args.cmd == "up":
            up(cluster, args.parts or None, apps=not args.no_apps)
        elif args.cmd == "down":
            down(cluster)
        elif args.cmd == "kill":
            say(f"{args.part}: SIGKILL pid {kill(cluster, args.part)}")
        elif args.cmd == "env":
            env = cluster.app_env()
            print("\n".join(f"export {k}={v}" for k, v in env.items()), flush=True)
        else:
            report = status(cluster)
            if args.json:
                print(json.dumps(report, indent=2), flush=True)
            else:
                for name, row in report.items():
                    state = f"pid {row['pid']}" if row["pid"] else "stopped"
                    print(f"{name:<11} {state:<12} {row['address']:<20} {row['rss_mb']} MB")
                print(f"total RSS {rss_mb(cluster):.0f} MB", flush=True)
            return 0 if all(row["pid"] for row in report.values()) else 1
    except LocalStackError as exc:
        print(f"cluster: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
