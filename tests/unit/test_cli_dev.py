"""`permstore dev` serves the client kit's in-memory permstore on a port."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from permstore.deploy.harness import free_port


def test_permstore_dev_serves_grants_and_checks() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "permstore.services.cli", "dev", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer dev"}
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "permstore dev did not start"
                time.sleep(0.2)
        event = {
            "event_id": "e1",
            "tenant": "acme",
            "type": "grant",
            "actor": "user:admin",
            "occurred_at": "2026-01-01T00:00:00Z",
            "principal": "user:alice",
            "resource": "doc:acme/*",
            "permission": "read",
        }
        assert httpx.post(f"{url}/v1/events", json={"events": [event]}, headers=headers).is_success
        check = {"tenant": "acme", "principal": "user:alice", "action": "read"}
        allowed = httpx.post(
            f"{url}/v1/check", json={**check, "resource": "doc:acme/spec"}, headers=headers
        ).json()
        denied = httpx.post(
            f"{url}/v1/check", json={**check, "resource": "doc:other"}, headers=headers
        ).json()
        assert allowed["allowed"] is True and denied["allowed"] is False
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "NOTHING PERSISTS" in err
