#!/usr/bin/env bash
# `make test-cluster`: bring the local cluster up (or reuse it), run the node-loss tests,
# stop the cluster if this run started it (PERMSTORE_KEEP_CLUSTER=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started_here=0
if ! $PY deploy/cluster.py status >/dev/null 2>&1; then
  started_here=1
fi
cleanup() {
  if [ "$started_here" = 1 ] && [ "${PERMSTORE_KEEP_CLUSTER:-0}" != 1 ]; then
    echo "[permstore] stopping the cluster this run started"
    $PY deploy/cluster.py down || true
  fi
}
trap cleanup EXIT
echo "[permstore] starting (or reusing) the local cluster"
$PY deploy/cluster.py up
echo "[permstore] pytest: node-loss tests on the cluster"
PERMSTORE_CLUSTER_TESTS=1 .venv/bin/pytest tests/cluster -q -p no:cacheprovider -s "$@"
