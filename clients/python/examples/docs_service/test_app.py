"""The example's own suite: against the in-memory fake by default, or a real permstore when
PERMSTORE_TEST_URL and PERMSTORE_TEST_TOKEN are set (the pytest plugin switches)."""

from collections.abc import Callable, Iterator

import pytest
from app import create_app
from fastapi.testclient import TestClient
from permstore_client import AsyncPermstoreClient, PermstoreClient


@pytest.fixture
def http(
    permstore_async_factory: Callable[[], AsyncPermstoreClient], permstore_tenant: str
) -> Iterator[TestClient]:
    """The app under test, asking this test's permstore."""
    with TestClient(create_app(permstore_async_factory, permstore_tenant)) as client:
        yield client


def test_a_reader_reads(http: TestClient, grant: Callable[..., object]) -> None:
    grant("user:alice", "doc:spec", "read")
    answer = http.get("/documents/spec", headers={"X-User": "alice"})
    assert answer.status_code == 200
    assert answer.json() == {"doc": "spec", "reader": "user:alice"}


def test_a_group_member_reads_everything_under_a_pattern(
    http: TestClient, permstore: PermstoreClient
) -> None:
    permstore.add_member("group:eng", "user:bob")
    permstore.grant("group:eng", "doc:*", "read")
    assert http.get("/documents/any", headers={"X-User": "bob"}).status_code == 200


def test_others_are_denied_with_what_they_asked(http: TestClient) -> None:
    answer = http.get("/documents/spec", headers={"X-User": "mallory"})
    assert answer.status_code == 403
    assert answer.json()["detail"]["principal"] == "user:mallory"
    assert answer.json()["detail"]["reasons"] == []


def test_a_revoke_denies(http: TestClient, permstore: PermstoreClient) -> None:
    permstore.grant("user:carol", "doc:spec", "read")
    assert http.get("/documents/spec", headers={"X-User": "carol"}).status_code == 200
    permstore.revoke("user:carol", "doc:spec", "read")
    assert http.get("/documents/spec", headers={"X-User": "carol"}).status_code == 403
