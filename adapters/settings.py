"""Configuration of every process, from environment variables (prefix PERMSTORE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_SECRETS = REPO_ROOT / ".local" / "secrets"


class Settings(BaseSettings):
    """Connection and behaviour settings shared by the processor, the API and the CLI."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    events_topic: str = "permstore.events"
    dlq_topic: str = "permstore.events.dlq"
    events_partitions: int = Field(default=8, ge=1, le=1024)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # SASL_PLAINTEXT: SCRAM-SHA-512 login per role (local broker); PLAINTEXT: no login (docker).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = None

    cassandra_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    cassandra_port: int = 9042
    cassandra_keyspace: str = Field(default="permstore", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    cassandra_replication_factor: int = Field(default=1, ge=1)
    cassandra_local_dc: str | None = None
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
    tenant_cache_entries: int = Field(default=2_000_000, ge=1000)
    # Check answers kept per API worker, each valid only while its tenant's applied position
    # is unchanged (0 turns the cache off).
    check_cache_entries: int = Field(default=50_000, ge=0, le=5_000_000)
    # Answer ordinary checks without FastAPI's per-request machinery (services/api/fast_lane.py);
    # off sends every check through the route, which gives the same answers more slowly.
    check_fast_lane: bool = True
    readiness_max_lag: int = Field(default=10_000, ge=0)
    rate_limit_per_second: int = Field(default=50_000, ge=1)
    # Where deploy/localstack.py keeps its generated passwords (`<local_dir>/secrets`).
    local_dir: Path = REPO_ROOT / ".local"

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
            if name in ("cassandra_password", "kafka_password"):
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

    def cassandra_secret(self, role: str) -> tuple[str, str] | None:
        """(username, password) for a Cassandra role: explicit settings, else the local file."""
        if self.cassandra_username and self.cassandra_password:
            return self.cassandra_username, self.cassandra_password.get_secret_value()
        path = self.cassandra_password_file or self.secrets_dir / f"cassandra_{role}.password"
        if not path.exists():
            return None
        return self.cassandra_username or f"permstore_{role}", path.read_text().strip()
