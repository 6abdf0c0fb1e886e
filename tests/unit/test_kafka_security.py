"""Kafka client options per role and the ACL table, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from permstore.adapters.kafka_acls import Operation, Pattern, Resource, acl_table
from permstore.adapters.kafka_security import KafkaLoginError, client_options, faust_credentials
from permstore.adapters.settings import Settings


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local dir with a password file for the api role only; no role variables set."""
    for role in ("ADMIN", "PROCESSOR", "API", "PUBLISHER"):
        monkeypatch.delenv(f"PERMSTORE_KAFKA_{role}_PASSWORD", raising=False)
    for name in ("USERNAME", "PASSWORD", "PASSWORD_FILE", "SECURITY_PROTOCOL"):
        monkeypatch.delenv(f"PERMSTORE_KAFKA_{name}", raising=False)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "kafka_api.password").write_text("api-secret\n")
    return tmp_path


def test_plaintext_needs_no_login(local: Path) -> None:
    """PLAINTEXT (docker, testcontainers): no SASL options, no password looked up."""
    settings = Settings(kafka_security_protocol="PLAINTEXT", local_dir=local)
    assert client_options(settings, "publisher") == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings, "processor") is None


def test_sasl_reads_the_role_file(local: Path) -> None:
    """Each role logs in as permstore_<role> with the password of its local file."""
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", local_dir=local)
    assert client_options(settings, "api") == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "permstore_api",
        "sasl_plain_password": "api-secret",
    }


def test_role_variable_then_explicit_settings_win(
    local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PERMSTORE_KAFKA_<ROLE>_PASSWORD beats the file; username/password settings beat both."""
    monkeypatch.setenv("PERMSTORE_KAFKA_API_PASSWORD", "from-env")
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", local_dir=local)
    assert client_options(settings, "api")["sasl_plain_password"] == "from-env"
    explicit = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        local_dir=local,
        kafka_username="svc",
        kafka_password="explicit",
    )
    options = client_options(explicit, "api")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "explicit")


def test_missing_password_says_what_to_do(local: Path) -> None:
    """No password for a role is an error naming the role and the fix, never an empty login."""
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", local_dir=local)
    with pytest.raises(KafkaLoginError, match="permstore_processor"):
        client_options(settings, "processor")
    with pytest.raises(ValueError, match="unknown Kafka role"):
        client_options(settings, "root")


def test_faust_credentials_use_scram(local: Path) -> None:
    """The processor's faust app gets SCRAM-SHA-512 over SASL_PLAINTEXT."""
    (local / "secrets" / "kafka_processor.password").write_text("p")
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", local_dir=local)
    credentials = faust_credentials(settings, "processor")
    assert credentials is not None
    assert credentials.username == "permstore_processor"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT"


def test_acl_table_is_least_privilege() -> None:
    """Only the processor reads the log and usage, only it writes the DLQ, the change stream
    and the touch records, the API writes events and usage and reads the touch records,
    nobody else gets anything."""
    settings = Settings(events_topic="permstore.x.events", dlq_topic="permstore.x.events.dlq")
    grants = {
        (a.principal.removeprefix("User:permstore_"), a.resource, a.name, a.pattern, a.operation)
        for a in acl_table(settings)
    }
    events, dlq, group = settings.events_topic, settings.dlq_topic, settings.processor_group
    topic, lit = Resource.TOPIC, Pattern.LITERAL
    assert {g[0] for g in grants} == {"processor", "api", "publisher"}
    assert {g for g in grants if g[4] == Operation.READ} == {
        ("processor", topic, events, lit, Operation.READ),
        ("processor", topic, settings.usage_topic, lit, Operation.READ),
        ("processor", Resource.GROUP, group, Pattern.PREFIXED, Operation.READ),
        ("api", topic, settings.view_updates_topic, lit, Operation.READ),
    }
    assert {(g[0], g[2]) for g in grants if g[4] == Operation.WRITE} == {
        ("processor", dlq),
        ("processor", settings.changes_topic),
        ("processor", settings.view_updates_topic),
        ("api", events),
        ("api", settings.usage_topic),
        ("publisher", events),
    }
    assert all(g[3] == lit for g in grants if g[1] == topic)
