#!/usr/bin/env bash
# `make test`: lint, types, every test against real servers, then the node-loss tests on a local
# 3-node cluster (`make test-cluster`; PERMSTORE_WITH_CLUSTER_TESTS=0 skips them); stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started_here=0
if ! $PY deploy/localstack.py status >/dev/null 2>&1; then
  started_here=1
fi
cleanup() {
  if [ "$started_here" = 1 ] && [ "${PERMSTORE_KEEP_SERVERS:-0}" != 1 ]; then
    echo "[permstore] stopping the servers this run started"
    $PY deploy/localstack.py down || true
  fi
}
trap cleanup EXIT
echo "[permstore] ruff check and format"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[permstore] mypy --strict"
.venv/bin/mypy .
echo "[permstore] starting (or reusing) Kafka and Cassandra"
$PY deploy/localstack.py up
echo "[permstore] pytest: unit, integration, e2e"
.venv/bin/pytest tests -q -p no:cacheprovider "$@"
if [ "${PERMSTORE_WITH_CLUSTER_TESTS:-1}" = 1 ]; then
  # The node-loss tests run on their own 3-node cluster; free the single node's memory and
  # cores first (it is stopped only if this run started it).
  cleanup
  trap - EXIT
  bash deploy/test_cluster.sh
fi
