"""Node-loss tests: only against the local cluster (`make test-cluster`), never `make test`."""

from __future__ import annotations

import os

import pytest

from permstore.deploy.stack.cluster import Cluster, cluster_from_env
from permstore.deploy.stack.processes import our_pid

# `make test` collects tests/ as a whole: these need the replicated cluster and take minutes.
collect_ignore_glob = [] if os.environ.get("PERMSTORE_CLUSTER_TESTS") == "1" else ["test_*.py"]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The running local cluster; fails (does not skip) when a part of it is not running."""
    found = cluster_from_env()
    parts = [
        *(n.kafka for n in found.nodes),
        *(n.cassandra for n in found.nodes),
        *(a.server for a in found.apps()),
    ]
    missing = [p.name for p in parts if our_pid(p) is None]
    if missing:
        pytest.fail(f"the local cluster is not running ({', '.join(missing)}): `make cluster`")
    return found
