"""Is the local Kafka / Cassandra ready? Asked with the real clients (aiokafka, cassandra-driver).

Run by `deploy/localstack.py` with the venv's Python; ports and logins come from the same
PERMSTORE_* settings as localstack's:

    .venv/bin/python -m permstore.deploy.readiness kafka cassandra --timeout 5

prints one JSON object, `{"kafka": {"ready": ..., "answers": ..., "note": ...}, ...}`, and
exits 0 only if every server asked about is ready. Kafka is ready when a Metadata request,
sent as permstore_admin (SASL/SCRAM) unless the broker is PLAINTEXT, lists a broker; it only
"answers" when it refuses that login (a node without SCRAM users yet). Cassandra is ready when
`SELECT release_version FROM system.local` works as permstore_admin, else as the default
superuser; it only "answers" when it speaks CQL but refuses both logins (a fresh node before
its roles exist). Passwords are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from permstore.deploy.cassandra_roles import try_login
from permstore.deploy.kafka_users import admin_options
from permstore.deploy.localstack import HOST, Settings, Verdict, cassandra_logins


def _why(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


async def _describe_cluster(
    bootstrap: str, request_timeout_ms: int, login: dict[str, Any]
) -> dict[str, Any] | None:
    """The cluster as Metadata describes it; None if the broker refuses the SASL login."""
    if login.get("sasl_mechanism"):
        host, port = bootstrap.rsplit(":", 1)
        try:  # the admin client would hide a refused login behind "Unable to bootstrap"
            conn = await create_conn(
                host, int(port), request_timeout_ms=request_timeout_ms, **login
            )
        except SaslAuthenticationFailed:
            return None
        conn.close()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="permstore-localstack",
        request_timeout_ms=request_timeout_ms,
        **login,
    )
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


def kafka_ready(bootstrap: str, login: dict[str, Any], timeout: float = 5.0) -> Verdict:
    """Ready (and answering) when a Metadata request to `bootstrap` lists a broker."""
    try:
        cluster = asyncio.run(
            asyncio.wait_for(_describe_cluster(bootstrap, int(timeout * 1000), login), timeout)
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        return Verdict(False, False, _why(exc))
    if cluster is None:
        return Verdict(False, True, f"login as {login['sasl_plain_username']} refused")
    brokers = [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]]
    if not brokers:
        return Verdict(False, False, "Metadata lists no broker yet")
    return Verdict(True, True, f"cluster {cluster['cluster_id']}, brokers {brokers}")


def cassandra_ready(
    host: str, port: int, logins: Sequence[tuple[str, str]], timeout: float = 5.0
) -> Verdict:
    """Ready when `SELECT release_version FROM system.local` works with one of the logins."""
    for user, password in logins:
        try:
            login = try_login(host, port, user, password, timeout)
            if login is None:
                continue
            with login:
                row = login.execute("SELECT release_version FROM system.local")[0]
        except (NoHostAvailable, OperationTimedOut, OSError) as exc:
            return Verdict(False, False, _why(exc))
        return Verdict(True, True, f"release {row.release_version}, logged in as {user}")
    return Verdict(False, True, f"login as {' and '.join(u for u, _ in logins)} refused")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="readiness", description=__doc__.split("\n")[0])
    parser.add_argument("servers", nargs="+", choices=("kafka", "cassandra"))
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the clients log every refused connection
    settings = Settings.from_env()
    report: dict[str, Verdict] = {}
    if "kafka" in args.servers:
        login = admin_options(settings)
        report["kafka"] = kafka_ready(f"{HOST}:{settings.kafka_port}", login, args.timeout)
    if "cassandra" in args.servers:
        logins = cassandra_logins(settings)
        report["cassandra"] = cassandra_ready(HOST, settings.cassandra_port, logins, args.timeout)
    print(json.dumps({name: dataclasses.asdict(v) for name, v in report.items()}), flush=True)
    return 0 if all(v.ready for v in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
