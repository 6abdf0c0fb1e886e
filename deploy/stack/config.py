"""Constants, errors and the PERMSTORE_* settings of the local stack."""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_DIR = Path(__file__).resolve().parents[1] / "local"
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
