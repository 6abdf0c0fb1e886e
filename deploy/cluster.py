"""Run a local replicated permstore cluster on loopback, without Docker (`make cluster`).

    python deploy/cluster.py up [PART...]   # 3 brokers, 3 Cassandra nodes (one at a time),
                                            # logins, topics and keyspace at RF 3, then
                                            # 2 processors and 2 API processes
    python deploy/cluster.py status         # every part: pid, address, RSS
    python deploy/cluster.py env            # shell exports for clients of the cluster
    python deploy/cluster.py kill PART      # SIGKILL one part (cassandra2, kafka3, processor1)
    python deploy/cluster.py down           # stop everything it started

Everything lives under `.local/cluster/`, on ports of its own: the single node of
`deploy/localstack.py` is never touched. Details: deploy/stack/cluster.py, docs/deployment.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from permstore.deploy.stack.cluster import main

if __name__ == "__main__":
    sys.exit(main())
