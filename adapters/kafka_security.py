"""Kafka logins: one SASL/SCRAM-SHA-512 user per role, or none where the broker is PLAINTEXT."""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from permstore.adapters.settings import Settings

MECHANISM = "SCRAM-SHA-512"
# admin: topics, ACLs, ops; processor: the faust app; api: the HTTP service; publisher: upstream.
ROLES = ("admin", "processor", "api", "publisher")


class KafkaLoginError(RuntimeError):
    """No password is configured or generated for a role."""


def kafka_secret(settings: Settings, role: str) -> tuple[str, str] | None:
    """(username, password) of a role: explicit settings, PERMSTORE_KAFKA_<ROLE>_PASSWORD, file."""
    if role not in ROLES:
        raise ValueError(f"unknown Kafka role {role!r} (one of {', '.join(ROLES)})")
    username = settings.kafka_username or f"permstore_{role}"
    if settings.kafka_password is not None:
        return username, settings.kafka_password.get_secret_value()
    if settings.kafka_password_file is None:
        from_env = settings.kafka_role_password(role)
        if from_env:
            return username, from_env
    path = settings.kafka_password_file or settings.secrets_dir / f"kafka_{role}.password"
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return (username, password) if password else None


def _login(settings: Settings, role: str) -> tuple[str, str]:
    secret = kafka_secret(settings, role)
    if secret is None:
        raise KafkaLoginError(
            f"no Kafka password for permstore_{role}: run `python deploy/localstack.py up` "
            f"(writes {settings.secrets_dir}/kafka_{role}.password) or set "
            "PERMSTORE_KAFKA_USERNAME and PERMSTORE_KAFKA_PASSWORD(_FILE)"
        )
    return secret


def client_options(settings: Settings, role: str) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client that logs in as `role`."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    username, password = _login(settings, role)
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }
    if protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context()
    return options


def faust_credentials(settings: Settings, role: str) -> faust.SASLCredentials | None:
    """faust's `broker_credentials` for `role` (None where the broker is PLAINTEXT)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    username, password = _login(settings, role)
    ssl_context = create_ssl_context() if settings.kafka_security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(
        username=username, password=password, mechanism=MECHANISM, ssl_context=ssl_context
    )
