"""Replicate Cassandra's auth keyspace to every node of the local cluster.

Run by `deploy/cluster.py up` with the venv's Python (it needs cassandra-driver), on the first
node while it is still alone, so the nodes that join next stream the logins with their data:

    python -m permstore.deploy.cluster_auth --host 127.0.0.1 --port 19042 --replicas 3

Logs in as permstore_admin if its password is known and accepted, else as the default
superuser (which a fresh node creates a moment after it opens its CQL port).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from permstore.deploy.cassandra_roles import Login, try_login
from permstore.deploy.localstack import Settings, cassandra_logins

KEYSPACES = ("system_auth", "system_distributed", "system_traces")


def _login(host: str, port: int, settings: Settings, timeout: float) -> Login:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        for user, password in cassandra_logins(settings):
            try:
                login = try_login(host, port, user, password)
            except (NoHostAvailable, OperationTimedOut, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if login is not None:
                return login
            last = f"login as {user} refused"
        time.sleep(1.0)
    raise SystemExit(f"cluster_auth: error: no login after {timeout:.0f}s ({last})")


def replicate(login: Login, datacenter: str, replicas: int) -> list[str]:
    """ALTER each system keyspace that is not yet at `replicas` copies; returns those altered."""
    altered = []
    for keyspace in KEYSPACES:
        rows = login.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [keyspace]
        )
        current = dict(rows[0].replication) if rows else {}
        if current.get(datacenter) == str(replicas):
            continue
        login.execute(
            f"ALTER KEYSPACE {keyspace} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replicas}}}"
        )
        altered.append(keyspace)
    return altered


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="cluster_auth", description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--datacenter", default="datacenter1")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the driver logs every refused attempt
    with _login(args.host, args.port, Settings.from_env(), args.timeout) as login:
        altered = replicate(login, args.datacenter, args.replicas)
    what = ", ".join(altered) if altered else "nothing (already replicated)"
    print(f"cluster_auth: {args.replicas} replicas in {args.datacenter}: {what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
