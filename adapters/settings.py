"""Configuration of every process, from environment variables (prefix PERMSTORE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# The one place the working folder of local servers, secrets, keys and logs is derived.
LOCAL_DIR = REPO_ROOT / ".local"
LOCAL_SECRETS = LOCAL_DIR / "secrets"


SECRET_FIELDS = frozenset(
    {
        "cassandra_password",
        "kafka_password",
        "kafka_admin_password",
        "kafka_processor_password",
        "kafka_api_password",
    }
)


class LoggingSettings(BaseSettings):
    """The log level alone, read by every process before (or without) its other settings."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_", extra="ignore")

    log_level: str | None = None


ConsistencyName = Literal[
    "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"
]


class Settings(BaseSettings):
    """Connection and behaviour settings shared by the processor, the API and the CLI."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    events_topic: str = "permstore.events"
    dlq_topic: str = "permstore.events.dlq"
    events_partitions: int = Field(default=8, ge=1, le=1024)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Replicas that must have an event before acks=all returns (topic min.insync.replicas).
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    # SASL_PLAINTEXT: SCRAM-SHA-512 login per role (local broker); PLAINTEXT: no login (docker).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = None
    # One password per login, for hosts that hold several (PERMSTORE_KAFKA_<ROLE>_PASSWORD).
    kafka_admin_password: SecretStr | None = None
    kafka_processor_password: SecretStr | None = None
    kafka_api_password: SecretStr | None = None

    cassandra_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    cassandra_port: int = 9042
    cassandra_keyspace: str = Field(default="permstore", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    cassandra_replication_factor: int = Field(default=1, ge=1)
    cassandra_local_dc: str | None = None
    # Per statement kind (docs/adr, consistency levels): writes of the processor, reads of the
    # API (views and the applied position a token is checked against). With RF replicas a
    # check never misses a write its token covers while W + R > RF: QUORUM/LOCAL_QUORUM on both.
    cassandra_write_consistency: ConsistencyName = "LOCAL_QUORUM"
    cassandra_read_consistency: ConsistencyName = "LOCAL_QUORUM"
    # A second replica is asked when the first has not answered after this long (API reads
    # only, all idempotent); 0 turns it off.
    cassandra_speculative_delay_ms: int = Field(default=0, ge=0, le=10_000)
    cassandra_username: str | None = None
    cassandra_password: SecretStr | None = None
    cassandra_password_file: Path | None = None

    consistency_wait_seconds: float = Field(default=5.0, gt=0, le=60)
    processor_batch_size: int = Field(default=1000, ge=1, le=10_000)
    processor_batch_seconds: float = Field(default=0.05, gt=0)
    processor_group: str = "permstore-processor"
    processor_write_concurrency: int = Field(default=64, ge=1)
    # Records read ahead into the per-tenant queues before the consumer waits for room.
    processor_max_pending: int = Field(default=20_000, ge=1)
    # A processor that died is noticed by the group (and its partitions handed over) after
    # this long without a heartbeat; the broker allows 6-300 s (group.*.session.timeout.ms).
    processor_session_timeout_seconds: float = Field(default=10.0, ge=6.0, le=300.0)
    tenant_cache_entries: int = Field(default=2_000_000, ge=1000)
    # View rows each API worker keeps in its principal cache (ADR 0017), kept exact by the
    # touch records on view_updates_topic (0 turns the cache off).
    view_cache_rows: int = Field(default=200_000, ge=0, le=20_000_000)
    view_updates_topic: str = "permstore.view-updates"
    # Answer ordinary checks without FastAPI's per-request machinery (services/api/fast_lane.py);
    # off sends every check through the route, which gives the same answers more slowly.
    check_fast_lane: bool = True
    readiness_max_lag: int = Field(default=10_000, ge=0)
    rate_limit_per_second: int = Field(default=50_000, ge=1)
    # The change stream (contract section 6, docs/changes.md): records kept this long, in
    # Cassandra and on changes_topic; a follower away longer must list permissions again.
    changes_topic: str = "permstore.changes"
    changes_retention_days: int = Field(default=7, ge=1, le=365)
    # Usage of access (issue 11, docs/usage.md): credited by every allowed decision, flushed
    # by each API worker to usage_topic, folded into Cassandra by the processor.
    usage_enabled: bool = True
    usage_topic: str = "permstore.usage"
    usage_partitions: int = Field(default=8, ge=1, le=1024)
    usage_flush_seconds: float = Field(default=5.0, gt=0, le=10)
    usage_max_entries: int = Field(default=100_000, ge=100, le=10_000_000)
    usage_kafka_bootstrap: str | None = None
    usage_retention_days: int = Field(default=400, ge=1, le=3660)
    # Shifts the clock of usage recording and findings only (tests make grants look old with
    # it); 0 outside tests, and never applied to check decisions.
    usage_clock_offset_seconds: float = Field(default=0.0, ge=-(86_400 * 3660), le=86_400 * 3660)
    # Where deploy/localstack.py keeps its generated passwords (`<local_dir>/secrets`).
    local_dir: Path = LOCAL_DIR
    # A generation to serve or write instead of the active one (a rebuild's processor).
    generation: int | None = Field(default=None, ge=1)
    # How often API workers look for a newly activated generation.
    generation_poll_seconds: float = Field(default=2.0, gt=0)
    # The processor's Prometheus port on 127.0.0.1 (0: none).
    processor_metrics_port: int = Field(default=9108, ge=0, le=65535)
    # faust's local tables and offsets (default `<local_dir>/faust`).
    faust_datadir: Path | None = None

    @field_validator("cassandra_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return (
            [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value
        )

    def as_env(self) -> dict[str, str]:
        """These settings as PERMSTORE_* variables for a child process (secrets excluded)."""
        env = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if name in SECRET_FIELDS:
                continue
            text = ",".join(value) if isinstance(value, list) else str(value)
            env[f"PERMSTORE_{name.upper()}"] = text
        return env

    def group_for(self, generation: int) -> str:
        """The processor's consumer group for one generation of views."""
        return f"{self.processor_group}-g{generation}"

    @property
    def secrets_dir(self) -> Path:
        """The folder of the local password files (one per login, mode 0600)."""
        return self.local_dir / "secrets"

    @property
    def faust_dir(self) -> Path:
        """Where faust keeps its local data."""
        return self.faust_datadir or self.local_dir / "faust"

    @property
    def logs_dir(self) -> Path:
        """The folder of process logs (rebuild processors, tests, benchmarks)."""
        return self.local_dir / "logs"

    def kafka_role_password(self, role: str) -> str | None:
        """The password PERMSTORE_KAFKA_<ROLE>_PASSWORD gives a Kafka login, if any."""
        secret: SecretStr | None = getattr(self, f"kafka_{role}_password", None)
        text = secret.get_secret_value().strip() if secret is not None else ""
        return text or None

    def cassandra_secret(self, role: str) -> tuple[str, str] | None:
        """(username, password) for a Cassandra role: explicit settings, else the local file."""
        if self.cassandra_username and self.cassandra_password:
            return self.cassandra_username, self.cassandra_password.get_secret_value()
        path = self.cassandra_password_file or self.secrets_dir / f"cassandra_{role}.password"
        if not path.exists():
            return None
        return self.cassandra_username or f"permstore_{role}", path.read_text().strip()
