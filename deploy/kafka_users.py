"""Create or repair permstore's Kafka SCRAM-SHA-512 logins (idempotent).

Run by `deploy/localstack.py up` with the venv's Python (it needs aiokafka):

    .venv/bin/python -m permstore.deploy.kafka_users --timeout 60

Each login (permstore_admin, _processor, _api, _publisher) is tried on the client listener; if
all work, that is all. The refused ones get their SCRAM credential (re)written with an
AlterUserScramCredentials request sent to the controller listener as permstore_admin over
SASL/PLAIN: that login is static (in server.properties), so this also works on a node whose
storage was formatted before SASL, which has no SCRAM user at all. ACLs come from
`adapters.bootstrap`. Passwords come from PERMSTORE_KAFKA_<ROLE>_PASSWORD or the 0600 files
in `<local dir>/secrets/` (localstack writes them first) and are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from permstore.deploy.localstack import HOST, Settings, read_password

MECHANISM = "SCRAM-SHA-512"
SCRAM_SHA_512 = 2  # ScramMechanism code in AlterUserScramCredentials
ITERATIONS = 8192  # Kafka accepts 4096..16384 for SCRAM-SHA-512


class KafkaUsersError(Exception):
    """A failure meant for the person running `up`."""


def say(message: str) -> None:
    """Print one progress line."""
    print(f"kafka_users: {message}", flush=True)


def admin_options(settings: Settings) -> dict[str, Any]:
    """aiokafka arguments to log in to the local broker as permstore_admin (SCRAM)."""
    admin = settings.kafka_credentials()["admin"]
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": admin.role,
        "sasl_plain_password": read_password(settings, admin) or "",
    }


class _AlterScramResponse(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterScramRequest(Request[_AlterScramStruct]):  # type: ignore[misc]
    """AlterUserScramCredentials v0 (aiokafka has no such request): upserts only."""

    API_KEY = 51

    def __init__(self, users: Sequence[tuple[str, str]]) -> None:
        self.upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for name, password in users:
            salt = os.urandom(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
            self.upsertions.append((name, SCRAM_SHA_512, ITERATIONS, salt, salted, {}))

    def build(self, request_struct_class: type[_AlterScramStruct]) -> _AlterScramStruct:
        """The v0 struct with no deletions."""
        return request_struct_class([], self.upsertions, {})


async def login_works(settings: Settings, user: str, password: str, wait_s: float) -> bool:
    """True if the client listener accepts this SCRAM login, False if it refuses it."""
    try:
        conn = await create_conn(
            HOST,
            settings.kafka_port,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=MECHANISM,
            sasl_plain_username=user,
            sasl_plain_password=password,
            request_timeout_ms=int(wait_s * 1000),
        )
    except SaslAuthenticationFailed:
        return False
    conn.close()
    return True


async def upsert(settings: Settings, users: Sequence[tuple[str, str]], wait_s: float) -> None:
    """Write the SCRAM credentials of `users` through the controller listener, as admin."""
    admin = settings.kafka_credentials()["admin"]
    try:
        conn = await create_conn(
            HOST,
            settings.kafka_controller_port,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username=admin.role,
            sasl_plain_password=read_password(settings, admin) or "",
            request_timeout_ms=int(wait_s * 1000),
        )
    except SaslAuthenticationFailed:
        raise KafkaUsersError(
            f"the controller refuses {admin.role}: Kafka runs with another admin password than "
            f"{admin.env_var} or {admin.file} holds; restart it (`down kafka`, `up kafka`)"
        ) from None
    try:
        response = await conn.send(AlterScramRequest(users))
    finally:
        conn.close()
    failed = [f"{r[0]}: error {r[1]} {r[2]}" for r in response.results if r[1] != 0]
    if failed:
        raise KafkaUsersError("Kafka refused SCRAM credentials: " + "; ".join(failed))


async def ensure_users(settings: Settings, wait_s: float) -> list[str]:
    """Make every permstore login work; returns the users whose credential was written."""
    logins: dict[str, str] = {}
    for cred in settings.kafka_credentials().values():
        password = read_password(settings, cred)
        if password is None:
            raise KafkaUsersError(f"no password for {cred.role} ({cred.env_var} or {cred.file})")
        logins[cred.role] = password
    refused = [u for u, p in logins.items() if not await login_works(settings, u, p, wait_s)]
    if not refused:
        return []
    say(f"writing SCRAM credentials of {', '.join(refused)}")
    await upsert(settings, [(u, logins[u]) for u in refused], wait_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    for user in refused:  # the broker applies them from the metadata log, a moment later
        while not await login_works(settings, user, logins[user], wait_s):
            if loop.time() > deadline:
                raise KafkaUsersError(f"{user} is still refused {wait_s:.0f}s after writing it")
            await asyncio.sleep(0.2)
    return refused


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="kafka_users", description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # aiokafka logs every refused login
    settings = Settings.from_env()
    if settings.kafka_security_protocol == "PLAINTEXT":
        say("the broker is PLAINTEXT: no logins to set up")
        return 0
    try:
        written = asyncio.run(ensure_users(settings, args.timeout))
    except (KafkaUsersError, KafkaError, OSError) as exc:
        print(f"kafka_users: error: {exc}", file=sys.stderr, flush=True)
        return 1
    say(f"set up {', '.join(written)}" if written else "every login works")
    return 0


if __name__ == "__main__":
    sys.exit(main())
