"""Run a real Kafka and a real Cassandra on loopback for permstore, without Docker.

Standard library only; `fetch`, `env`, `secrets` and `down` run with any Python 3.11, while
`up` and the readiness part of `status` need the project's venv (aiokafka, cassandra-driver):

    python deploy/localstack.py fetch    # jars from Maven Central into ~/.cache/permstore/jars
    python deploy/localstack.py up       # start both (detached), wait until ready, set up logins
    python deploy/localstack.py status   # running? pid, port, ready?
    python deploy/localstack.py env      # shell exports of connection settings (no secrets)
    python deploy/localstack.py down     # stop what `up` started
    python deploy/localstack.py secrets  # only the password files, + .local/compose/*.env

The servers are the official Apache jars (Kafka in KRaft mode, Cassandra 5.0) run as plain
JVM processes on Java 17. Data, generated configs, pid files and logs live under
`<repo>/.local/` (git-ignored); generated passwords under `<repo>/.local/secrets/`.
Readiness is a TCP check here, then `deploy/readiness.py` run with the venv's Python: a
Metadata request with aiokafka (as permstore_admin), a CQL query with cassandra-driver. The
logins are created (or checked) by `deploy/cassandra_roles.py` and `deploy/kafka_users.py`,
also run with the venv's Python. Kafka's client listener takes SASL/SCRAM-SHA-512 logins only
and authorizes them with ACLs (created by `adapters.bootstrap`), unless
PERMSTORE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
POM_DIR = Path(__file__).resolve().parent / "local"
KAFKA_POM = POM_DIR / "kafka-pom.xml"
CASSANDRA_POM = POM_DIR / "cassandra-pom.xml"

HOST = "127.0.0.1"
CASSANDRA_DC = "datacenter1"  # what SimpleSnitch reports; docker-compose.yml uses the same
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
REQUIRED_JAVA = 17

# Newest first. 3.9.x keeps every old protocol version (safest for aiokafka and faust);
# 4.x is the fallback if Maven refuses every 3.9.x.
KAFKA_VERSIONS = ("3.9.2", "3.9.1", "3.9.0", "4.1.1", "4.0.1")
# Newest 5.0.x first; the open range at the end takes whatever newest 5.0.x Maven serves.
CASSANDRA_VERSIONS = ("5.0.9", "5.0.8", "5.0.7", "5.0.6", "[5.0.0,5.0.999]")

MARKER_NAME = ".permstore-fetch.json"
KAFKA_READY_LINE = "Kafka Server started"
CASSANDRA_READY_LINE = "Starting listening for CQL clients"
KAFKA_MAIN = "kafka.Kafka"
CASSANDRA_MAIN = "org.apache.cassandra.service.CassandraDaemon"
KAFKA_SECURITY_PROTOCOLS = ("SASL_PLAINTEXT", "PLAINTEXT")
KAFKA_ROLES = ("admin", "processor", "api", "publisher")

# Cassandra's well-known bootstrap superuser; `up` disables it once permstore_admin exists.
DEFAULT_SUPERUSER = "cassandra"
DEFAULT_SUPERUSER_SECRET = "cassandra"  # noqa: S105 - public default, disabled by `up`

TAIL_LINES = 40

# Module flags from Cassandra 5.0's conf/jvm17-server.options (without them Java 17 refuses
# Cassandra's reflective access and the JVM dies at start).
CASSANDRA_JAVA17_FLAGS = (
    "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.math=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
)


class LocalStackError(Exception):
    """A failure whose message is meant for the person running the script."""


def say(message: str) -> None:
    """Print one progress line."""
    print(f"localstack: {message}", flush=True)


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise LocalStackError(f"{name}={raw!r} is not an integer") from None


def _env_str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    return raw or default


def _kafka_security_protocol(env: Mapping[str, str]) -> str:
    value = _env_str(env, "PERMSTORE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT").upper()
    if value not in KAFKA_SECURITY_PROTOCOLS:
        raise LocalStackError(
            f"PERMSTORE_KAFKA_SECURITY_PROTOCOL={value!r}: the local broker offers "
            f"{' or '.join(KAFKA_SECURITY_PROTOCOLS)}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class Credential:
    """One Cassandra or Kafka login: its role, where its password comes from."""

    key: str
    role: str
    env_var: str
    file: Path


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything configurable, read from PERMSTORE_* environment variables."""

    repo: Path
    local_dir: Path
    jar_cache: Path
    kafka_port: int
    kafka_controller_port: int
    cassandra_port: int
    cassandra_storage_port: int
    cassandra_jmx_port: int
    kafka_heap: str
    cassandra_heap: str
    kafka_jvm_opts: tuple[str, ...]
    cassandra_jvm_opts: tuple[str, ...]
    kafka_version: str | None
    cassandra_version: str | None
    kafka_timeout: float
    cassandra_timeout: float
    kafka_security_protocol: str
    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment (os.environ by default)."""
        e = dict(os.environ if env is None else env)
        local_dir = Path(_env_str(e, "PERMSTORE_LOCAL_DIR", str(REPO_ROOT / ".local")))
        cache_default = Path.home() / ".cache" / "permstore" / "jars"
        return cls(
            repo=REPO_ROOT,
            local_dir=local_dir.resolve(),
            jar_cache=Path(_env_str(e, "PERMSTORE_JAR_CACHE", str(cache_default))).resolve(),
            kafka_port=_env_int(e, "PERMSTORE_KAFKA_PORT", 9092),
            kafka_controller_port=_env_int(e, "PERMSTORE_KAFKA_CONTROLLER_PORT", 9093),
            cassandra_port=_env_int(e, "PERMSTORE_CASSANDRA_PORT", 9042),
            cassandra_storage_port=_env_int(e, "PERMSTORE_CASSANDRA_STORAGE_PORT", 7000),
            cassandra_jmx_port=_env_int(e, "PERMSTORE_CASSANDRA_JMX_PORT", 7199),
            kafka_heap=_env_str(e, "PERMSTORE_KAFKA_HEAP", "512m"),
            cassandra_heap=_env_str(e, "PERMSTORE_CASSANDRA_HEAP", "1g"),
            kafka_jvm_opts=tuple(shlex.split(e.get("PERMSTORE_KAFKA_JVM_OPTS", ""))),
            cassandra_jvm_opts=tuple(shlex.split(e.get("PERMSTORE_CASSANDRA_JVM_OPTS", ""))),
            kafka_version=e.get("PERMSTORE_KAFKA_VERSION", "").strip() or None,
            cassandra_version=e.get("PERMSTORE_CASSANDRA_VERSION", "").strip() or None,
            kafka_timeout=float(_env_int(e, "PERMSTORE_KAFKA_START_TIMEOUT", 120)),
            cassandra_timeout=float(_env_int(e, "PERMSTORE_CASSANDRA_START_TIMEOUT", 180)),
            kafka_security_protocol=_kafka_security_protocol(e),
            env=e,
        )

    @property
    def kafka_lib(self) -> Path:
        """Folder of the Kafka jars."""
        return self.jar_cache / "kafka"

    @property
    def cassandra_lib(self) -> Path:
        """Folder of the Cassandra jars."""
        return self.jar_cache / "cassandra"

    @property
    def kafka_dir(self) -> Path:
        """Kafka's data, config and pid file."""
        return self.local_dir / "kafka"

    @property
    def cassandra_dir(self) -> Path:
        """Cassandra's data, config and pid file."""
        return self.local_dir / "cassandra"

    @property
    def logs_dir(self) -> Path:
        """Server logs (stdout and stderr of each JVM)."""
        return self.local_dir / "logs"

    @property
    def secrets_dir(self) -> Path:
        """Generated passwords, one file each, mode 0600."""
        return self.local_dir / "secrets"

    @property
    def lock_file(self) -> Path:
        """Serializes concurrent `up` and `down` runs."""
        return self.local_dir / "localstack.lock"

    def credentials(self) -> dict[str, Credential]:
        """The three permstore Cassandra logins, by key (admin, processor, api)."""
        return {
            key: Credential(
                key=key,
                role=f"permstore_{key}",
                env_var=f"PERMSTORE_CASSANDRA_{key.upper()}_PASSWORD",
                file=self.secrets_dir / f"cassandra_{key}.password",
            )
            for key in ("admin", "processor", "api")
        }

    def kafka_credentials(self) -> dict[str, Credential]:
        """The four permstore Kafka logins, by key (admin, processor, api, publisher)."""
        return {
            key: Credential(
                key=key,
                role=f"permstore_{key}",
                env_var=f"PERMSTORE_KAFKA_{key.upper()}_PASSWORD",
                file=self.secrets_dir / f"kafka_{key}.password",
            )
            for key in KAFKA_ROLES
        }

    @property
    def kafka_sasl(self) -> bool:
        """True when Kafka's client listener takes SCRAM logins and checks ACLs."""
        return self.kafka_security_protocol == "SASL_PLAINTEXT"


# --------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------


def read_password(settings: Settings, cred: Credential) -> str | None:
    """The password of a login from its env var, else its secret file, else None."""
    from_env = settings.env.get(cred.env_var)
    if from_env:
        return from_env
    try:
        return cred.file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def ensure_password(settings: Settings, cred: Credential) -> str:
    """The password of a login; generate one into its 0600 secret file if there is none."""
    existing = read_password(settings, cred)
    if existing is not None:
        return existing
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    settings.secrets_dir.chmod(0o700)
    password = secrets.token_urlsafe(32)
    fd = os.open(cred.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    say(f"generated a password for {cred.role} in {cred.file}")
    return password


def _write_private(path: Path, lines: Sequence[str]) -> None:
    """Atomically write a 0600 file."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    staging.replace(path)


def write_compose_env_files(settings: Settings) -> list[Path]:
    """Write the 0600 env files that docker-compose.yml reads from `.local/compose/`.

    `roles.env` holds PERMSTORE_CASSANDRA_{ADMIN,PROCESSOR,API}_PASSWORD for the
    cassandra-init service; `<login>.env` holds PERMSTORE_CASSANDRA_USERNAME and
    PERMSTORE_CASSANDRA_PASSWORD of one login, for the service that uses it.
    """
    folder = settings.local_dir / "compose"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    header = "# Generated by `python deploy/localstack.py secrets`; do not commit."
    creds = settings.credentials().values()
    passwords = {cred.key: ensure_password(settings, cred) for cred in creds}
    written = [folder / "roles.env"]
    _write_private(written[0], [header, *(f"{c.env_var}={passwords[c.key]}" for c in creds)])
    for cred in creds:
        path = folder / f"{cred.key}.env"
        _write_private(
            path,
            [
                header,
                f"PERMSTORE_CASSANDRA_USERNAME={cred.role}",
                f"PERMSTORE_CASSANDRA_PASSWORD={passwords[cred.key]}",
            ],
        )
        written.append(path)
    return written


# --------------------------------------------------------------------------------------
# Tools: java, mvn, the venv's python
# --------------------------------------------------------------------------------------

_JAVA_INSTALL_HINT = (
    "install a Java 17 runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
    "macOS: `brew install openjdk@17`) or point PERMSTORE_JAVA at a Java 17 `java` binary"
)


def java_major_version(java: Path) -> int | None:
    """The major version of a `java` binary, or None if it cannot be run."""
    try:
        out = subprocess.run(
            [str(java), "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stderr.splitlines():
        name, _, value = line.strip().partition("=")
        if name.strip() == "java.specification.version":
            spec = value.strip()
            major = spec.split(".")[1] if spec.startswith("1.") else spec.split(".")[0]
            return int(major) if major.isdigit() else None
    return None


def find_java(settings: Settings) -> Path:
    """A Java 17 binary: PERMSTORE_JAVA, else JAVA_HOME, else PATH, else well-known places."""
    explicit = settings.env.get("PERMSTORE_JAVA", "").strip()
    if explicit:
        path = Path(explicit)
        version = java_major_version(path)
        if version != REQUIRED_JAVA:
            raise LocalStackError(
                f"PERMSTORE_JAVA={explicit} is Java {version}, Cassandra 5.0 here needs Java "
                f"{REQUIRED_JAVA}: {_JAVA_INSTALL_HINT}"
            )
        return path
    candidates: list[tuple[str, Path]] = []
    java_home = settings.env.get("JAVA_HOME", "").strip()
    if java_home:
        candidates.append(("JAVA_HOME", Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(("PATH", Path(on_path)))
    for pattern in ("/usr/lib/jvm/*17*/bin/java", "/opt/homebrew/opt/openjdk@17/bin/java"):
        candidates.extend(("well-known", p) for p in sorted(Path("/").glob(pattern.lstrip("/"))))
    candidates.extend(
        ("well-known", p)
        for p in sorted(
            Path("/Library/Java/JavaVirtualMachines").glob("*17*/Contents/Home/bin/java")
        )
    )
    seen: set[Path] = set()
    for origin, path in candidates:
        real = path.resolve() if path.exists() else path
        if real in seen:
            continue
        seen.add(real)
        version = java_major_version(path)
        if version == REQUIRED_JAVA:
            if origin != candidates[0][0]:
                say(f"using Java {REQUIRED_JAVA} from {path} ({origin})")
            return path
        if version is not None:
            say(f"skipping {path} ({origin}): Java {version}, need Java {REQUIRED_JAVA}")
    raise LocalStackError(f"no Java {REQUIRED_JAVA} found: {_JAVA_INSTALL_HINT}")


def find_mvn() -> str:
    """The `mvn` binary, or a clear error naming what to install."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalStackError(
            "Maven (`mvn`) is not on PATH: install it (Debian/Ubuntu: `apt-get install maven`; "
            "macOS: `brew install maven`); it fetches the Kafka and Cassandra jars"
        )
    return mvn


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


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FetchSpec:
    """What to fetch for one server."""

    name: str
    pom: Path
    lib: Path
    versions: tuple[str, ...]
    main_jar_prefix: str

    def maven_args(self, version: str) -> list[str]:
        """Extra -D/-P arguments selecting a version."""
        if self.name == "kafka":
            args = [f"-Dkafka.version={version}"]
            if version.startswith("4."):
                args.append("-Dkafka4")
            return args
        return [f"-Dcassandra.version={version}"]


def _fetch_specs(settings: Settings) -> list[FetchSpec]:
    return [
        FetchSpec(
            name="kafka",
            pom=KAFKA_POM,
            lib=settings.kafka_lib,
            versions=(settings.kafka_version,) if settings.kafka_version else KAFKA_VERSIONS,
            main_jar_prefix="kafka_2.13-",
        ),
        FetchSpec(
            name="cassandra",
            pom=CASSANDRA_POM,
            lib=settings.cassandra_lib,
            versions=(
                (settings.cassandra_version,) if settings.cassandra_version else CASSANDRA_VERSIONS
            ),
            main_jar_prefix="cassandra-all-",
        ),
    ]


def read_marker(lib: Path) -> dict[str, str] | None:
    """The fetch marker of a lib folder (version, pom hash), or None."""
    try:
        data = json.loads((lib / MARKER_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch_one(spec: FetchSpec, mvn: str, busy: bool) -> str:
    marker = read_marker(spec.lib)
    pom_hash = _sha256(spec.pom)
    wanted = spec.versions[0] if len(spec.versions) == 1 else None
    if (
        marker is not None
        and marker.get("pom_sha256") == pom_hash
        and (wanted is None or marker.get("version") == wanted)
    ):
        say(f"{spec.name} {marker.get('version')}: jars already in {spec.lib}")
        return marker.get("version", "?")
    if marker is not None and busy:
        # A running JVM opens class-path jars lazily: never swap them under it.
        say(
            f"{spec.name}: the jars in {spec.lib} are outdated (pom or version changed) but "
            f"{spec.name} runs from them; keeping them until it is stopped (`down`, `fetch`)"
        )
        return marker.get("version", "?")
    spec.lib.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for version in spec.versions:
        staging = spec.lib.parent / f".{spec.name}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        say(f"{spec.name} {version}: fetching jars with Maven into {spec.lib} ...")
        started = time.monotonic()
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(spec.pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
            *spec.maven_args(version),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(staging.glob(f"{spec.main_jar_prefix}*.jar")) if staging.exists() else []
        if result.returncode != 0 or not jars:
            output = (result.stdout + result.stderr).strip().splitlines()
            failures.append(f"{version}: " + " | ".join(output[-5:]))
            say(f"{spec.name} {version}: not available from Maven, trying the next version")
            shutil.rmtree(staging, ignore_errors=True)
            continue
        resolved = jars[0].name[len(spec.main_jar_prefix) : -len(".jar")]
        marker_data = {
            "artifact": spec.main_jar_prefix.rstrip("-"),
            "version": resolved,
            "requested": version,
            "pom_sha256": pom_hash,
            "jars": str(len(list(staging.glob("*.jar")))),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MARKER_NAME).write_text(json.dumps(marker_data, indent=2), encoding="utf-8")
        old = spec.lib.parent / f".{spec.name}.old-{os.getpid()}"
        if spec.lib.exists():
            spec.lib.rename(old)
        staging.rename(spec.lib)
        shutil.rmtree(old, ignore_errors=True)
        say(
            f"{spec.name} {resolved}: {marker_data['jars']} jars in {spec.lib} "
            f"({time.monotonic() - started:.1f}s)"
        )
        return resolved
    raise LocalStackError(
        f"Maven could not fetch {spec.name} (tried {', '.join(spec.versions)}):\n  "
        + "\n  ".join(failures)
    )


def fetch(settings: Settings) -> dict[str, str]:
    """Fetch (or reuse) the Kafka and Cassandra jars; return the versions by server name."""
    mvn = find_mvn()
    running = servers(settings)
    return {
        spec.name: _fetch_one(spec, mvn, busy=our_pid(running[spec.name]) is not None)
        for spec in _fetch_specs(settings)
    }


def _ensure_fetched(settings: Settings) -> dict[str, str]:
    versions: dict[str, str] = {}
    for spec in _fetch_specs(settings):
        marker = read_marker(spec.lib)
        if marker is None or marker.get("pom_sha256") != _sha256(spec.pom):
            return fetch(settings)
        wanted = settings.kafka_version if spec.name == "kafka" else settings.cassandra_version
        if wanted and marker.get("version") != wanted:
            return fetch(settings)
        versions[spec.name] = marker.get("version", "?")
    return versions


# --------------------------------------------------------------------------------------
# Readiness: a TCP check here, the real clients (deploy/readiness.py) in the venv
# --------------------------------------------------------------------------------------


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
            "deploy.readiness",
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


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


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


def _rotate_log(path: Path) -> None:
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


def launch_detached(cmd: Sequence[str], log_file: Path, cwd: Path, pid_file: Path) -> int:
    """Start a command detached from this process; stdout+stderr to log_file; write its pid."""
    out = subprocess.run(
        ["sh", "-c", _LAUNCH, "sh", str(log_file), *cmd],
        cwd=cwd,
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


class _LogWatch:
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


# --------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------


_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SASL_MARKER = "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT"


def _kafka_listeners(settings: Settings, admin_password: str) -> list[str]:
    """Listener lines: PLAINTEXT as before, or SASL on both listeners with ACLs."""
    client, controller = settings.kafka_port, settings.kafka_controller_port
    if not settings.kafka_sasl:
        return [
            f"listeners=PLAINTEXT://{HOST}:{client},CONTROLLER://{HOST}:{controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{client}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]
    if not admin_password.isascii() or any(c in admin_password for c in '"\\ \t\r\n'):
        raise LocalStackError(
            "PERMSTORE_KAFKA_ADMIN_PASSWORD may not contain quotes, backslashes or white space"
        )
    admin = f'username="permstore_admin" password="{admin_password}"'
    return [
        f"listeners=CLIENT://{HOST}:{client},CONTROLLER://{HOST}:{controller}",
        f"advertised.listeners=CLIENT://{HOST}:{client}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=CLIENT",
        SASL_MARKER + ",CONTROLLER:SASL_PLAINTEXT",
        # Clients (and the broker itself) log in with SCRAM; users live in the metadata log.
        "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"listener.name.client.scram-sha-512.sasl.jaas.config={_SCRAM_LOGIN} required {admin};",
        # The controller listener cannot use SCRAM (KRaft): a static PLAIN login, admin only,
        # so no anonymous principal needs to be a super user.
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={_PLAIN_LOGIN} required {admin} "
        f'user_permstore_admin="{admin_password}";',
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:permstore_admin",
        "allow.everyone.if.no.acl.found=false",
    ]


def _kafka_properties(settings: Settings, major: int, admin_password: str) -> str:
    data = settings.kafka_dir / "data"
    lines = [
        "# Generated by deploy/localstack.py on every `up`: edit the script, not this file.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{settings.kafka_controller_port}",
        *_kafka_listeners(settings, admin_password),
        f"log.dirs={data}",
        "num.network.threads=2",
        "num.io.threads=4",
        "num.partitions=1",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "group.initial.rebalance.delay.ms=0",
        # Topics are created explicitly by permstore's bootstrap (with LogAppendTime).
        "auto.create.topics.enable=false",
        "delete.topic.enable=true",
        # Kafka is permstore's source of truth: never expire data by default.
        "log.retention.ms=-1",
    ]
    if major >= 4:
        lines += [
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
        ]
    return "\n".join(lines) + "\n"


_KAFKA_LOG4J = """\
# Generated by deploy/localstack.py: everything at INFO to stdout (redirected to the log file).
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""

_KAFKA_LOG4J2 = """\
# Generated by deploy/localstack.py (Kafka 4.x logs through log4j2).
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _new_kafka_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _kafka_command(settings: Settings, java: Path, major: int) -> tuple[list[str], Path]:
    conf = settings.kafka_dir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    conf.chmod(0o700)  # server.properties holds the admin password
    (settings.kafka_dir / "data").mkdir(parents=True, exist_ok=True)
    props = conf / "server.properties"
    logins = settings.kafka_credentials() if settings.kafka_sasl else {}
    passwords = {key: ensure_password(settings, cred) for key, cred in logins.items()}
    text = _kafka_properties(settings, major, passwords.get("admin", ""))
    _write_private(props, text.splitlines())
    (conf / "log4j.properties").write_text(_KAFKA_LOG4J, encoding="utf-8")
    (conf / "log4j2.properties").write_text(_KAFKA_LOG4J2, encoding="utf-8")
    jvm = [
        str(java),
        f"-Xmx{settings.kafka_heap}",
        f"-Xms{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+PerfDisableSharedMem",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
        f"-Dlog4j2.configurationFile=file:{conf / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        *settings.kafka_jvm_opts,
        "-cp",
        f"{settings.kafka_lib}/*",
    ]
    return jvm, props


def _format_kafka_storage(settings: Settings, java: Path, props: Path) -> None:
    data = settings.kafka_dir / "data"
    if (data / "meta.properties").exists():
        return
    id_file = settings.kafka_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text(_new_kafka_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    conf = settings.kafka_dir / "conf"
    say(f"kafka: formatting storage in {data} (cluster id {cluster_id})")
    cmd = [
        str(java),
        "-Xmx256m",
        f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
        f"-Dlog4j2.configurationFile=file:{conf / 'log4j2.properties'}",
        "-cp",
        f"{settings.kafka_lib}/*",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(props),
        "--ignore-formatted",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LocalStackError(f"kafka storage format failed:\n{(out.stdout + out.stderr)[-4000:]}")


def start_kafka(settings: Settings, java: Path, version: str) -> int:
    """Write Kafka's config, format its storage once, and start it detached; return its pid."""
    server = servers(settings)["kafka"]
    major = int(version.split(".")[0]) if version[:1].isdigit() else 3
    for port in (settings.kafka_port, settings.kafka_controller_port):
        if port_open(port):
            raise LocalStackError(
                f"port {port} is already in use by another program: stop it or set "
                "PERMSTORE_KAFKA_PORT / PERMSTORE_KAFKA_CONTROLLER_PORT"
            )
    jvm, props = _kafka_command(settings, java, major)
    _format_kafka_storage(settings, java, props)
    _rotate_log(server.log_file)
    pid = launch_detached(
        [*jvm, KAFKA_MAIN, str(props)], server.log_file, settings.kafka_dir, server.pid_file
    )
    say(f"kafka {version}: started pid {pid}, log {server.log_file}")
    return pid


# --------------------------------------------------------------------------------------
# Cassandra
# --------------------------------------------------------------------------------------


def _cassandra_yaml(settings: Settings) -> str:
    d = settings.cassandra_dir / "data"
    return f"""\
# Generated by deploy/localstack.py on every `up`: edit the script, not this file.
# Cassandra 5.0 format (unknown keys are fatal). One node on loopback, tuned for 2 cores.
cluster_name: permstore-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{HOST}:{settings.cassandra_storage_port}"
listen_address: {HOST}
rpc_address: {HOST}
storage_port: {settings.cassandra_storage_port}
start_native_transport: true
native_transport_port: {settings.cassandra_port}

data_file_directories:
  - {d / "data"}
commitlog_directory: {d / "commitlog"}
saved_caches_directory: {d / "saved_caches"}
hints_directory: {d / "hints"}
cdc_raw_directory: {d / "cdc_raw"}

commitlog_sync: periodic
commitlog_sync_period: 10s

authenticator:
  class_name: org.apache.cassandra.auth.PasswordAuthenticator
authorizer:
  class_name: org.apache.cassandra.auth.CassandraAuthorizer
role_manager:
  class_name: org.apache.cassandra.auth.CassandraRoleManager
network_authorizer:
  class_name: org.apache.cassandra.auth.AllowAllNetworkAuthorizer
roles_validity: 2000ms
permissions_validity: 2000ms
credentials_validity: 2000ms

# The processor writes one single-partition state batch per tenant per Kafka batch.
batch_size_warn_threshold: 64KiB
# The processor sends unlogged batches of neighbouring rows with per-statement timestamps;
# warning on every one of them only costs CPU in the driver's logging.
unlogged_batch_across_partitions_warn_threshold: 100000
batch_size_fail_threshold: 8MiB

# Small thread pools for a 2-core machine shared with Kafka and the services.
concurrent_reads: 8
concurrent_writes: 16
concurrent_counter_writes: 8
concurrent_materialized_view_writes: 4
concurrent_compactors: 1
memtable_flush_writers: 1

# Some slack for a loaded 2-core machine (defaults: 5s/2s/2s/10s).
read_request_timeout: 5000ms
write_request_timeout: 5000ms
range_request_timeout: 10000ms
request_timeout: 10000ms

# Fail loudly rather than limp on (without these keys Cassandra's built-in default is ignore).
disk_failure_policy: stop
commit_failure_policy: stop

# Dev box: tests drop and truncate often; snapshots would only fill the disk.
auto_snapshot: false
hinted_handoff_enabled: false
# A fresh cluster that never ran Cassandra 4: enable all 5.0 storage features.
storage_compatibility_mode: NONE
"""


_CASSANDRA_LOGBACK = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/localstack.py: INFO to stdout (redirected to the log file). -->
<configuration scan="false">
  <statusListener class="ch.qos.logback.core.status.NopStatusListener"/>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %logger{0}: %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


def _without_memory_locking(settings: Settings) -> list[str]:
    """A command prefix that keeps Cassandra from mlock()ing its whole heap, where needed.

    Cassandra calls mlockall() at start. As root (CAP_IPC_LOCK) that succeeds and faults in
    the whole committed heap first, which costs ~5 s on a small VM. Dropping the capability
    makes it fall back to a one-line warning. PERMSTORE_CASSANDRA_MLOCK=1 keeps the lock.
    """
    if settings.env.get("PERMSTORE_CASSANDRA_MLOCK", "") == "1":
        return []
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-ipc_lock", "--"] if setpriv else []


def _cassandra_command(settings: Settings, java: Path) -> list[str]:
    home = settings.cassandra_dir
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"):
        (home / "data" / sub).mkdir(parents=True, exist_ok=True)
    (home / "triggers").mkdir(parents=True, exist_ok=True)
    yaml = conf / "cassandra.yaml"
    yaml.write_text(_cassandra_yaml(settings), encoding="utf-8")
    logback = conf / "logback.xml"
    logback.write_text(_CASSANDRA_LOGBACK, encoding="utf-8")
    jamm = sorted(settings.cassandra_lib.glob("jamm-*.jar"))
    if not jamm:
        raise LocalStackError(f"no jamm jar in {settings.cassandra_lib}: run `fetch` again")
    jmx = (
        [f"-Dcassandra.jmx.local.port={settings.cassandra_jmx_port}"]
        if settings.cassandra_jmx_port > 0
        else []
    )
    return [
        *_without_memory_locking(settings),
        str(java),
        f"-Xms{settings.cassandra_heap}",
        f"-Xmx{settings.cassandra_heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:MaxGCPauseMillis=300",
        "-XX:InitiatingHeapOccupancyPercent=70",
        "-XX:+UseThreadPriorities",
        "-XX:StringTableSize=1000003",
        "-XX:+PerfDisableSharedMem",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.net.preferIPv4Stack=true",
        f"-javaagent:{jamm[0]}",
        *CASSANDRA_JAVA17_FLAGS,
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{yaml}",
        f"-Dcassandra.storagedir={home / 'data'}",
        f"-Dcassandra.logdir={settings.logs_dir}",
        f"-Dcassandra.triggers_dir={home / 'triggers'}",
        f"-Dlogback.configurationFile=file://{logback}",
        # Start fast: one node, nobody to gossip with, no ring to wait for.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=100",
        "-Dchronicle.analytics.disable=true",
        *jmx,
        *settings.cassandra_jvm_opts,
        "-cp",
        f"{settings.cassandra_lib}/*",
        CASSANDRA_MAIN,
    ]


def start_cassandra(settings: Settings, java: Path, version: str) -> int:
    """Write Cassandra's config and start it detached; return its pid."""
    server = servers(settings)["cassandra"]
    ports = {
        "PERMSTORE_CASSANDRA_PORT": settings.cassandra_port,
        "PERMSTORE_CASSANDRA_STORAGE_PORT": settings.cassandra_storage_port,
    }
    if settings.cassandra_jmx_port > 0:
        ports["PERMSTORE_CASSANDRA_JMX_PORT"] = settings.cassandra_jmx_port
    for var, port in ports.items():
        if port_open(port):
            raise LocalStackError(
                f"port {port} is already in use by another program: stop it or set {var}"
            )
    cmd = _cassandra_command(settings, java)
    _rotate_log(server.log_file)
    pid = launch_detached(cmd, server.log_file, settings.cassandra_dir, server.pid_file)
    say(f"cassandra {version}: started pid {pid}, log {server.log_file}")
    return pid


def cassandra_logins(settings: Settings) -> list[tuple[str, str]]:
    """The logins a readiness check tries: permstore_admin (if known), then the default."""
    creds = settings.credentials()
    admin = read_password(settings, creds["admin"])
    logins = [(creds["admin"].role, admin)] if admin else []
    return [*logins, (DEFAULT_SUPERUSER, DEFAULT_SUPERUSER_SECRET)]


def bootstrap_roles(settings: Settings, timeout: float = 120.0) -> None:
    """Create or check the permstore logins and disable the default superuser (idempotent)."""
    for cred in settings.credentials().values():
        ensure_password(settings, cred)
    args = ("--host", HOST, "--port", str(settings.cassandra_port), "--timeout", str(timeout))
    if run_in_venv(settings, "deploy.cassandra_roles", *args).returncode != 0:
        raise LocalStackError("could not set up the logins (see above)")


# --------------------------------------------------------------------------------------
# up / down / status / env
# --------------------------------------------------------------------------------------


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
    watch: _LogWatch | None
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
    versions = _ensure_fetched(settings)
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
            watch = _LogWatch(server.log_file, server.ready_line)
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
    if run_in_venv(settings, "deploy.kafka_users", "--timeout", "60").returncode != 0:
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


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


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


if __name__ == "__main__":
    sys.exit(main())
