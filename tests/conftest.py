"""Session fixtures: real servers, our processor and API as processes, tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.support.stack import (
    ManagedProcess,
    StackEnvironment,
    api,
    drop_test_data,
    processor,
    start_servers,
    wait_ready,
)


@pytest.fixture(scope="session")
def test_env() -> Iterator[StackEnvironment]:
    """Real Kafka and Cassandra, bootstrapped with this session's topic and keyspace."""
    environment = start_servers()
    yield environment
    if os.environ.get("PERMSTORE_TEST_KEEP_DATA") != "1":
        drop_test_data(environment.env)
    for container in environment.containers:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def processor_process(test_env: StackEnvironment) -> Iterator[ManagedProcess]:
    """The stream processor, running for the whole session (tests may kill and restart it)."""
    process = processor(test_env.env)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_process(
    test_env: StackEnvironment, processor_process: ManagedProcess
) -> Iterator[ManagedProcess]:
    """The API, ready to serve."""
    process = api(test_env.env, test_env.api_port)
    process.start()
    wait_ready(test_env.api_url, process)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_url(test_env: StackEnvironment, api_process: ManagedProcess) -> str:
    """Base URL of the running API."""
    return test_env.api_url


@pytest.fixture(scope="session")
def issue_token(test_env: StackEnvironment) -> object:
    """Function issuing a signed token the running API accepts."""
    from permstore.services.auth_settings import AuthSettings, build_issuer

    issuer = build_issuer(AuthSettings())

    def issue(
        tenant: str, scopes: str = "check,write,audit", ttl: timedelta = timedelta(hours=1)
    ) -> str:
        return issuer.issue(f"service:tests-{os.getpid()}", tenant, scopes, ttl)

    return issue


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    """A tenant no other test uses, so tests never see each other's data."""
    return f"t{uuid.uuid4().hex[:12]}"
