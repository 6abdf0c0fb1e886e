"""The `permstore` CLI against the running API: writes, reads, audit and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from permstore.services.cli import app
from tests.support.stack import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PERMSTORE = REPO / ".venv" / "bin" / "permstore"

Cli = Callable[..., Result]


@pytest.fixture
def cli(api_url: str, tenant: str, issue_token: Callable[..., str]) -> Cli:
    """Run the CLI in-process with PERMSTORE_URL, PERMSTORE_TOKEN and PERMSTORE_TENANT set."""
    token = issue_token(tenant)

    def run(*args: str, **env: str | None) -> Result:
        environment: dict[str, str | None] = {
            "PERMSTORE_URL": api_url,
            "PERMSTORE_TOKEN": token,
            "PERMSTORE_TENANT": tenant,
            "PERMSTORE_ACTOR": None,
            "PERMSTORE_TIMEOUT": None,
        }
        environment.update({f"PERMSTORE_{k.upper()}": v for k, v in env.items()})
        return CliRunner().invoke(app, list(args), env=environment)

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def written(result: Result) -> str:
    """The consistency token a write printed (asserting it succeeded)."""
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token and "\n" not in token
    return token


def eventually(probe: Callable[[], bool], seconds: float = 10.0) -> None:
    """Lists answer from the current view: wait (bounded) until it shows a change."""
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, "the view did not show the change in time"
        time.sleep(0.1)


def test_grant_check_revoke_check_with_tokens(cli: Cli) -> None:
    """Read-your-writes through the CLI: exit 0 while granted, 1 once revoked."""
    resource = "doc:acme/eng/spec-1"
    granted = written(cli("grant", "user:alice", "doc:acme/eng/*", "read", "--actor", "user:admin"))

    allowed = cli("--json", "check", "user:alice", resource, "read", "--at-least", granted)
    assert allowed.exit_code == 0, allowed.output
    body = as_json(allowed)
    assert body["allowed"] is True and body["token"]
    assert body["reasons"][0]["grant"] == {
        "principal": "user:alice",
        "resource": "doc:acme/eng/*",
        "permission": "read",
    }
    people = cli("check", "user:alice", resource, "read", "--at-least", granted)
    assert people.exit_code == 0 and "ALLOWED" in people.stdout

    revoked = written(cli("revoke", "user:alice", "doc:acme/eng/*", "read", "--reason", "T-1"))
    denied = cli("check", "user:alice", resource, "read", "--at-least", revoked, "--json")
    assert denied.exit_code == 1, denied.output
    assert as_json(denied) == as_json(denied) | {"allowed": False, "reasons": []}


def test_who_can_and_permissions_through_groups_and_roles(cli: Cli) -> None:
    written(cli("define-role", "editor", "read,write"))
    written(cli("add-member", "group:eng", "user:bob"))
    written(cli("add-member", "group:eng", "user:carol"))
    written(cli("add-member", "group:all", "group:eng"))
    written(cli("grant", "group:eng", "doc:acme/eng/*", "role:editor"))
    token = written(cli("grant", "group:all", "doc:acme/eng/*", "read"))
    assert cli("check", "user:bob", "doc:acme/eng/x", "write", "--at-least", token).exit_code == 0
    read = cli("--json", "check", "user:bob", "doc:acme/eng/x", "read", "--at-least", token)
    chains = sorted(r["via_chain"] for r in as_json(read)["reasons"])
    assert chains == [["group:eng"], ["group:eng", "group:all"]]
    # The table for people names the groups of each path too.
    table = cli("check", "user:bob", "doc:acme/eng/x", "read")
    assert table.exit_code == 0 and "group:all" in table.stdout

    def who() -> dict[str, Any]:
        result = cli("--json", "who-can", "doc:acme/eng/x", "--action", "write")
        assert result.exit_code == 0, result.output
        body: dict[str, Any] = as_json(result)
        return body

    eventually(lambda: len(who()["principals"]) == 2)
    body = who()
    assert [p["principal"] for p in body["principals"]] == ["user:bob", "user:carol"]
    assert body["principals"][0]["reasons"][0]["via_group"] == "group:eng"
    assert body["next_cursor"] is None and body["token"]

    first = as_json(cli("--json", "who-can", "doc:acme/eng/x", "--limit", "1"))
    assert len(first["principals"]) == 1 and first["next_cursor"]
    rest = as_json(cli("--json", "who-can", "doc:acme/eng/x", "--cursor", first["next_cursor"]))
    everyone = {(p["principal"], p["action"]) for p in first["principals"] + rest["principals"]}
    assert everyone == {(p, a) for p in ("user:bob", "user:carol") for a in ("read", "write")}

    table = cli("who-can", "doc:acme/eng/x")
    assert table.exit_code == 0 and "user:carol" in table.stdout

    perms = cli("--json", "permissions", "user:bob")
    assert perms.exit_code == 0, perms.output
    held = {(p["resource"], p["action"]) for p in as_json(perms)["permissions"]}
    assert held == {("doc:acme/eng/*", "read"), ("doc:acme/eng/*", "write")}

    written(cli("remove-member", "group:eng", "user:carol"))
    eventually(lambda: [p["principal"] for p in who()["principals"]] == ["user:bob"])


def test_history_and_audit_check(cli: Cli) -> None:
    written(cli("grant", "user:dana", "repo:payments", "deploy", "--reason", "CHG-7"))
    token = written(cli("revoke", "user:dana", "repo:payments", "deploy"))
    assert cli("check", "user:dana", "repo:payments", "deploy", "--at-least", token).exit_code == 1

    def timeline() -> list[dict[str, Any]]:
        result = cli("history", "--principal", "user:dana", "--json")
        assert result.exit_code == 0, result.output
        events: list[dict[str, Any]] = as_json(result)["events"]
        return events

    eventually(lambda: len(timeline()) == 2)
    grant_event, revoke_event = timeline()
    assert grant_event["event"]["type"] == "grant"
    assert grant_event["event"]["reason"] == "CHG-7"
    assert grant_event["event"]["actor"].startswith("service:tests-")
    assert revoke_event["event"]["type"] == "revoke"

    limited = as_json(cli("--json", "history", "--principal", "user:dana", "--limit", "1"))
    assert limited["events"] == [grant_event] and limited["next_cursor"]
    table = cli("history", "--resource", "repo:payments")
    assert table.exit_code == 0 and "CHG-7" in table.stdout

    def audit(at: str) -> Result:
        return cli("audit-check", "user:dana", "repo:payments", "deploy", "--at", at, "--json")

    while_granted = audit(grant_event["recorded_at"])
    assert while_granted.exit_code == 0, while_granted.output
    assert as_json(while_granted)["allowed"] is True
    assert audit(revoke_event["recorded_at"]).exit_code == 1
    assert audit("2000-01-01T00:00:00Z").exit_code == 1
    bad_time = audit("yesterday")
    assert bad_time.exit_code == 2 and "invalid_request" in bad_time.stderr


def test_bad_token_is_exit_3(cli: Cli, tenant: str, issue_token: Callable[..., str]) -> None:
    garbage = cli("check", "user:alice", "doc:acme/x", "read", token="not-a-token")
    assert garbage.exit_code == 3, garbage.output
    assert "401" in garbage.stderr and "not-a-token" not in garbage.output

    other_tenant = cli("check", "user:alice", "doc:acme/x", "read", token=issue_token("elsewhere"))
    assert other_tenant.exit_code == 3 and "403" in other_tenant.stderr

    no_write_scope = cli("grant", "user:a", "doc:x", "read", token=issue_token(tenant, "check"))
    assert no_write_scope.exit_code == 3


def test_invalid_input_is_exit_2(cli: Cli) -> None:
    bad_principal = cli("check", "alice", "doc:acme/x", "read")
    assert bad_principal.exit_code == 2, bad_principal.output
    assert "422 invalid_request" in bad_principal.stderr and "principal" in bad_principal.stderr

    as_json_error = cli("--json", "grant", "alice", "doc:acme/*", "read")
    assert as_json_error.exit_code == 2
    assert json.loads(as_json_error.stderr)["error"]["code"] == "invalid_request"

    pattern_check = cli("check", "user:alice", "doc:acme/*", "read")
    assert pattern_check.exit_code == 2

    bad_token = cli("check", "user:alice", "doc:acme/x", "read", "--at-least", "garbage")
    assert bad_token.exit_code == 2, bad_token.output


def test_unreachable_service_is_exit_4(cli: Cli) -> None:
    result = cli("check", "user:alice", "doc:acme/x", "read", url=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 4
    assert "unreachable" in result.stderr


def test_console_script_keeps_stdout_for_json(
    api_url: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """The installed `permstore` script: exit codes and stdout that is JSON and nothing else."""
    env = {
        **os.environ,
        "PERMSTORE_URL": api_url,
        "PERMSTORE_TOKEN": issue_token(tenant),
        "PERMSTORE_TENANT": tenant,
        "PERMSTORE_LOG_LEVEL": "DEBUG",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PERMSTORE), *args], env=env, capture_output=True, text=True, timeout=60
        )

    grant = run("grant", "service:ci", "repo:infra", "deploy")
    assert grant.returncode == 0, grant.stderr
    token = grant.stdout.strip()
    check = run("--json", "check", "service:ci", "repo:infra", "deploy", "--at-least", token)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["allowed"] is True
    denied = run("check", "service:ci", "repo:infra", "destroy", "--json")
    assert denied.returncode == 1
    assert json.loads(denied.stdout)["allowed"] is False
    assert env["PERMSTORE_TOKEN"] not in grant.stderr + check.stderr + denied.stderr
