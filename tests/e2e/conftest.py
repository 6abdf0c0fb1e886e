"""Fixtures of the HTTP end-to-end tests: clients holding tokens for a fresh tenant."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import TokenFactory, bearer


@pytest.fixture
def http(api_url: str, tenant: str, issue_token: TokenFactory) -> Iterator[httpx.Client]:
    """A client whose token holds check, write and audit on this test's tenant."""
    with httpx.Client(
        base_url=api_url, headers=bearer(issue_token(tenant, "check,write,audit")), timeout=30
    ) as client:
        yield client


@pytest.fixture
def operator_http(api_url: str, issue_token: TokenFactory) -> Iterator[httpx.Client]:
    """A client whose token is an operator's: tenant '*' and every scope."""
    with httpx.Client(
        base_url=api_url, headers=bearer(issue_token("*", "check,write,audit,admin")), timeout=30
    ) as client:
        yield client


@pytest.fixture
def anonymous(api_url: str) -> Iterator[httpx.Client]:
    """A client that sends no token."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client
