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

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`python deploy/localstack.py`): make `permstore.deploy.stack` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from permstore.deploy.stack.cassandra import bootstrap_roles, cassandra_logins, start_cassandra
from permstore.deploy.stack.cli import down, env_exports, main, status, up
from permstore.deploy.stack.config import (
    CASSANDRA_DC,
    DEFAULT_SUPERUSER,
    DEFAULT_SUPERUSER_SECRET,
    HOST,
    Credential,
    LocalStackError,
    Settings,
    say,
)
from permstore.deploy.stack.fetch import fetch, find_java
from permstore.deploy.stack.kafka import start_kafka
from permstore.deploy.stack.passwords import (
    ensure_password,
    read_password,
    write_compose_env_files,
)
from permstore.deploy.stack.processes import (
    Server,
    Verdict,
    our_pid,
    pid_alive,
    port_open,
    probe,
    servers,
)

__all__ = [
    "CASSANDRA_DC",
    "DEFAULT_SUPERUSER",
    "DEFAULT_SUPERUSER_SECRET",
    "HOST",
    "Credential",
    "LocalStackError",
    "Server",
    "Settings",
    "Verdict",
    "bootstrap_roles",
    "cassandra_logins",
    "down",
    "ensure_password",
    "env_exports",
    "fetch",
    "find_java",
    "main",
    "our_pid",
    "pid_alive",
    "port_open",
    "probe",
    "read_password",
    "say",
    "servers",
    "start_cassandra",
    "start_kafka",
    "status",
    "up",
    "write_compose_env_files",
]

if __name__ == "__main__":
    sys.exit(main())
