# permstore: the two commands are `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv servers down status bootstrap run test lint typecheck unit integration e2e bench clean cluster cluster-down test-cluster

help:
	@echo "make run    - start Kafka, Cassandra, the processor and the API (Ctrl-C stops)"
	@echo "make test   - install, start servers, run ruff, mypy and every test, stop servers"
	@echo "make bench  - run the benchmarks against running servers"
	@echo "make down   - stop the local Kafka and Cassandra"
	@echo "make cluster       - 3 Kafka brokers, 3 Cassandra nodes, 2 processors, 2 APIs"
	@echo "make cluster-down  - stop that cluster"
	@echo "make test-cluster  - node-loss tests on the cluster (starts it if needed)"

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "permstore needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	@echo "[permstore] creating virtualenv $(VENV) and installing the project"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@$(PY) -m pip install -q -e ./clients/python
	@touch $(STAMP)

venv: $(STAMP)

servers: $(STAMP)
	@$(PY) deploy/localstack.py up

down:
	@$(PYTHON) deploy/localstack.py down

status:
	@$(PYTHON) deploy/localstack.py status

bootstrap: servers
	@$(PY) -m permstore.adapters.bootstrap

run: servers
	@$(PY) deploy/run_stack.py

lint: $(STAMP)
	@echo "[permstore] ruff check and format"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	@echo "[permstore] mypy --strict"
	@$(VENV)/bin/mypy .

unit: $(STAMP)
	@$(VENV)/bin/pytest tests/unit -q

test: $(STAMP)
	@bash deploy/test.sh

bench: $(STAMP)
	@$(PY) -m bench.run_all

cluster: $(STAMP)
	@$(PY) deploy/cluster.py up

cluster-down:
	@$(PYTHON) deploy/cluster.py down

test-cluster: $(STAMP)
	@bash deploy/test_cluster.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
