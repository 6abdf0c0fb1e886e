"""The `permstore` CLI without a server: parsing, requests sent, output and exit codes.

The client kit's HTTP client is given an httpx.MockTransport, so every request the CLI makes
is seen here and answered by a fake API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import structlog
from permstore_client import Page, PrincipalItem
from typer.testing import CliRunner, Result

from permstore.services.cli import app, split_actions
from permstore.services.cli.support import (
    CliConfig,
    ExitCode,
    collect,
    configure_cli_logging,
    exit_code_for_status,
    token_subject,
)

TOKEN = jwt.encode({"sub": "service:ci-bot"}, "k" * 32, algorithm="HS256")
API_KEY = "psk_abcdefghijklmnopqrstuvwxyz0123456789"
ENV_NAMES = (
    "PERMSTORE_URL",
    "PERMSTORE_TOKEN",
    "PERMSTORE_TENANT",
    "PERMSTORE_ACTOR",
    "PERMSTORE_TIMEOUT",
)
REASON = {
    "kind": "direct",
    "grant": {"principal": "user:alice", "resource": "doc:acme/*", "permission": "read"},
    "via_group": None,
    "via_role": None,
    "pattern": "doc:acme/*",
    "expires_at": None,
    "description": "user:alice holds read on doc:acme/*",
}

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeApi:
    """Answers requests with handler and records them."""

    handler: Handler = field(default=lambda request: httpx.Response(500))
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def query(self, index: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(str(self.requests[index].url)).query).items()}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """Route every httpx.Client the client kit opens to a fake API."""
    fake = FakeApi()
    real_client = httpx.Client

    def to_fake(
        *args: Any, transport: httpx.BaseTransport | None = None, **kw: Any
    ) -> httpx.Client:
        return real_client(*args, transport=httpx.MockTransport(fake), **kw)

    monkeypatch.setattr(httpx, "Client", to_fake)
    yield fake


def run(*args: str, **env: str | None) -> Result:
    """Invoke the CLI with a clean PERMSTORE_* environment plus env."""
    environment: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    environment.update(
        {"PERMSTORE_TOKEN": TOKEN, "PERMSTORE_TENANT": "acme", "PERMSTORE_URL": "http://api"}
    )
    environment.update({f"PERMSTORE_{k.upper()}": v for k, v in env.items()})
    return CliRunner().invoke(app, list(args), env=environment)


def answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def error(status: int, code: str, message: str, details: Any = None) -> Handler:
    return answer(status, {"error": {"code": code, "message": message, "details": details}})


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.USAGE),
        (404, ExitCode.USAGE),
        (409, ExitCode.USAGE),
        (413, ExitCode.USAGE),
        (422, ExitCode.USAGE),
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (429, ExitCode.UNAVAILABLE),
        (502, ExitCode.UNAVAILABLE),
        (503, ExitCode.UNAVAILABLE),
        (504, ExitCode.UNAVAILABLE),
        (500, ExitCode.SERVER),
        (501, ExitCode.SERVER),
    ],
)
def test_status_to_exit_code(status: int, code: ExitCode) -> None:
    assert exit_code_for_status(status) is code


def test_exit_code_values_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (422, "invalid_request", 2),
        (400, "invalid_token", 2),
        (401, "unauthenticated", 3),
        (403, "forbidden", 3),
        (503, "consistency_timeout", 4),
        (429, "rate_limited", 4),
        (500, "internal", 5),
    ],
)
def test_server_errors_map_to_exit_codes_with_code_and_message_on_stderr(
    api: FakeApi, status: int, code: str, exit_code: int
) -> None:
    api.handler = error(status, code, f"the {code} message")
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == exit_code
    assert result.stdout == ""
    assert f"{status} {code}: the {code} message" in result.stderr


def test_validation_details_are_shown_field_by_field(api: FakeApi) -> None:
    api.handler = error(
        422,
        "invalid_request",
        "invalid input: principal",
        [{"field": "principal", "rule": "principal must be user:<id>"}],
    )
    result = run("check", "alice", "doc:acme/x", "read")
    assert result.exit_code == 2
    assert "principal: principal must be user:<id>" in result.stderr


def test_json_errors_are_json_on_stderr(api: FakeApi) -> None:
    api.handler = error(503, "consistency_timeout", "not yet", {"reached": "tok-1"})
    result = run("--json", "check", "user:alice", "doc:acme/x", "read", "--at-least", "tok-9")
    assert result.exit_code == 4
    assert result.stdout == ""
    body = json.loads(result.stderr)
    assert body == {
        "error": {
            "code": "consistency_timeout",
            "message": "not yet",
            "details": {"reached": "tok-1"},
            "status": 503,
        }
    }


def test_connection_refused_is_unavailable(api: FakeApi) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    api.handler = refuse
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 4
    assert "unreachable" in result.stderr and "Connection refused" in result.stderr


def test_timeout_is_unavailable(api: FakeApi) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    api.handler = slow
    assert run("check", "user:alice", "doc:acme/x", "read").exit_code == 4


def test_a_malformed_answer_is_a_server_error(api: FakeApi) -> None:
    api.handler = lambda request: httpx.Response(200, text="<html>proxy</html>")
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 5
    assert "bad_answer" in result.stderr


def test_a_non_json_error_answer_keeps_its_status(api: FakeApi) -> None:
    api.handler = lambda request: httpx.Response(502, text="Bad Gateway")
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 4
    assert "502 http_error" in result.stderr


# --------------------------------------------------------------------------- usage


def test_missing_argument_is_a_usage_error(api: FakeApi) -> None:
    result = run("check", "user:alice", "doc:acme/x")
    assert result.exit_code == 2
    assert api.requests == []


def test_missing_tenant_is_a_usage_error(api: FakeApi) -> None:
    result = run("check", "user:alice", "doc:acme/x", "read", tenant=None)
    assert result.exit_code == 2
    assert "PERMSTORE_TENANT" in result.stderr
    assert api.requests == []


def test_missing_token_is_a_usage_error(api: FakeApi) -> None:
    result = run("check", "user:alice", "doc:acme/x", "read", token=None)
    assert result.exit_code == 2
    assert "PERMSTORE_TOKEN" in result.stderr


def test_a_token_with_a_newline_is_refused_without_echoing_it(api: FakeApi) -> None:
    result = run("check", "user:alice", "doc:acme/x", "read", token="sekrit\nX-Evil: 1")
    assert result.exit_code == 2
    assert "sekrit" not in result.output
    assert api.requests == []


def test_a_url_without_scheme_is_a_usage_error(api: FakeApi) -> None:
    result = run("check", "user:alice", "doc:acme/x", "read", url="localhost:8080")
    assert result.exit_code == 2
    assert api.requests == []


def test_limit_must_be_positive(api: FakeApi) -> None:
    assert run("who-can", "doc:acme/x", "--limit", "0").exit_code == 2
    assert run("history", "--limit", "-1").exit_code == 2


def test_help_documents_exit_codes_and_never_shows_the_token() -> None:
    result = run("--help", token="sekrit-token-value")
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout and "auth refused" in result.stdout
    assert "sekrit-token-value" not in result.output
    check_help = run("check", "--help", token="sekrit-token-value")
    assert "1 when denied" in check_help.stdout
    assert "sekrit-token-value" not in check_help.output


def test_every_command_is_registered() -> None:
    result = run("--help")
    for name in (
        "grant",
        "revoke",
        "add-member",
        "remove-member",
        "define-role",
        "check",
        "who-can",
        "permissions",
        "history",
        "audit-check",
        "token",
    ):
        assert name in result.stdout
    assert run("token", "--help").exit_code == 0
    assert "api-key" in run("token", "--help").stdout


def test_the_token_never_appears_in_error_output(api: FakeApi) -> None:
    api.handler = lambda request: httpx.Response(
        401, json={"error": {"code": "unauthenticated", "message": f"bad {TOKEN}"}}
    )
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 3
    assert TOKEN not in result.output


# --------------------------------------------------------------------------- options


def test_options_and_environment_reach_the_request(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": True, "token": "tok-2", "reasons": [REASON]})
    result = run("check", "user:alice", "doc:acme/x", "read", "--at-least", "tok-1")
    assert result.exit_code == 0, result.output
    assert api.last.url == "http://api/v1/check"
    assert api.last.headers["authorization"] == f"Bearer {TOKEN}"
    assert api.body() == {
        "tenant": "acme",
        "principal": "user:alice",
        "resource": "doc:acme/x",
        "action": "read",
        "consistency": {"at_least": "tok-1"},
    }


def test_global_options_work_before_and_after_the_command(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": False, "token": "tok-2", "reasons": []})
    before = run(
        "--url", "http://other:9", "--tenant", "t1", "--json", "check", "user:a", "doc:x", "read"
    )
    after = run("check", "user:a", "doc:x", "read", "--url", "http://other:9", "--tenant", "t1")
    assert before.exit_code == after.exit_code == 1
    assert [str(r.url) for r in api.requests] == ["http://other:9/v1/check"] * 2
    assert [json.loads(r.content)["tenant"] for r in api.requests] == ["t1", "t1"]
    assert json.loads(before.stdout)["allowed"] is False


def test_command_options_override_the_environment(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": True, "token": "t", "reasons": []})
    run("check", "user:a", "doc:x", "read", "--token", API_KEY, "--tenant", "beta")
    assert api.last.headers["authorization"] == f"Bearer {API_KEY}"
    assert api.body()["tenant"] == "beta"


# --------------------------------------------------------------------------- check


def test_check_allowed_exits_0_and_prints_json(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": True, "token": "tok-2", "reasons": [REASON]})
    result = run("--json", "check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"allowed": True, "reasons": [REASON], "token": "tok-2"}


def test_check_denied_exits_1(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": False, "token": "tok-2", "reasons": []})
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 1
    assert "DENIED" in result.stdout and "tok-2" in result.stdout


def test_check_for_people_shows_the_reasons(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": True, "token": "tok-2", "reasons": [REASON]})
    result = run("check", "user:alice", "doc:acme/x", "read")
    assert result.exit_code == 0
    assert "ALLOWED" in result.stdout and "doc:acme/*" in result.stdout


def test_audit_check_sends_at_and_maps_the_decision(api: FakeApi) -> None:
    api.handler = answer(200, {"allowed": False, "reasons": [], "at": "2025-01-01T00:00:00Z"})
    result = run(
        "--json", "audit-check", "user:alice", "doc:acme/x", "read", "--at", "2025-01-01T00:00:00Z"
    )
    assert result.exit_code == 1
    assert api.last.url.path == "/v1/tenants/acme/audit/check"
    assert api.query() == {
        "principal": "user:alice",
        "resource": "doc:acme/x",
        "action": "read",
        "at": "2025-01-01T00:00:00Z",
    }
    assert json.loads(result.stdout)["allowed"] is False


def test_audit_check_needs_at(api: FakeApi) -> None:
    assert run("audit-check", "user:alice", "doc:acme/x", "read").exit_code == 2


# --------------------------------------------------------------------------- writes


def test_grant_publishes_one_event_and_prints_only_the_token(api: FakeApi) -> None:
    api.handler = answer(202, {"accepted": 1, "token": "tok-7"})
    result = run(
        "grant",
        "user:alice",
        "doc:acme/*",
        "role:editor",
        "--expires-at",
        "2030-01-01T00:00:00Z",
        "--reason",
        "JIRA-1",
        "--actor",
        "user:admin",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "tok-7\n"
    assert "granted role:editor" in result.stderr
    (event,) = api.body()["events"]
    assert event["type"] == "grant"
    assert event["tenant"] == "acme"
    assert event["actor"] == "user:admin"
    assert event["reason"] == "JIRA-1"
    assert event["expires_at"] == "2030-01-01T00:00:00Z"
    assert (event["principal"], event["resource"], event["permission"]) == (
        "user:alice",
        "doc:acme/*",
        "role:editor",
    )


def test_the_actor_defaults_to_the_token_subject(api: FakeApi) -> None:
    api.handler = answer(202, {"accepted": 1, "token": "tok-7"})
    result = run("--json", "revoke", "user:alice", "doc:acme/*", "read")
    assert result.exit_code == 0, result.output
    assert api.body()["events"][0]["actor"] == "service:ci-bot"
    assert json.loads(result.stdout)["token"] == "tok-7"


def test_the_actor_comes_from_the_environment(api: FakeApi) -> None:
    api.handler = answer(202, {"accepted": 1, "token": "tok-7"})
    run("add-member", "group:eng", "user:bob", actor="user:ops")
    assert api.body()["events"][0] == api.body()["events"][0] | {
        "type": "add_member",
        "group": "group:eng",
        "member": "user:bob",
        "actor": "user:ops",
    }


def test_without_a_principal_subject_an_actor_is_required(api: FakeApi) -> None:
    result = run("remove-member", "group:eng", "user:bob", token=API_KEY)
    assert result.exit_code == 2
    assert "--actor" in result.stderr
    assert api.requests == []


def test_define_role_accepts_separate_and_comma_separated_actions(api: FakeApi) -> None:
    api.handler = answer(202, {"accepted": 1, "token": "tok-7"})
    result = run("define-role", "editor", "read,write", "comment", "read")
    assert result.exit_code == 0, result.output
    assert api.body()["events"][0]["actions"] == ["read", "write", "comment"]


def test_split_actions() -> None:
    assert split_actions(["a, b", "", "c", "a"]) == ["a", "b", "c"]
    assert split_actions([","]) == []


def test_write_refused_for_scope_exits_3(api: FakeApi) -> None:
    api.handler = error(403, "forbidden", "the token lacks the write scope")
    result = run("grant", "user:alice", "doc:acme/*", "read")
    assert result.exit_code == 3
    assert "403 forbidden: the token lacks the write scope" in result.stderr


# --------------------------------------------------------------------------- listings


def paged(key: str, items: list[dict[str, Any]], *, with_token: bool = True) -> Handler:
    """A listing endpoint serving items in pages of the requested limit, with cursors."""

    def handle(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        start = int(query.get("cursor", "0"))
        size = int(query["limit"])
        chunk = items[start : start + size]
        more = start + size < len(items)
        body: dict[str, Any] = {key: chunk, "next_cursor": str(start + size) if more else None}
        if with_token:
            body["token"] = f"view-{start}"
        return httpx.Response(200, json=body)

    return handle


WHO = [{"principal": f"user:u{i}", "action": "read", "reasons": [REASON]} for i in range(5)]


def test_who_can_follows_every_page(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permstore.services.cli.support.MAX_PAGE", 2)
    api.handler = paged("principals", WHO)
    result = run("--json", "who-can", "doc:acme/eng/spec-1", "--action", "read")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["principals"] == WHO
    assert body["next_cursor"] is None
    assert len(api.requests) == 3
    assert api.requests[0].url.raw_path.startswith(
        b"/v1/tenants/acme/resources/doc%3Aacme%2Feng%2Fspec-1/principals"
    )
    assert api.query(0) == {"limit": "2", "action": "read"}
    assert api.query(2) == {"limit": "2", "action": "read", "cursor": "4"}


def test_who_can_limit_stops_on_a_page_boundary_and_can_resume(api: FakeApi) -> None:
    api.handler = paged("principals", WHO)
    first = json.loads(run("--json", "who-can", "doc:acme/x", "--limit", "3").stdout)
    assert first["principals"] == WHO[:3]
    assert first["next_cursor"] == "3"
    assert api.query() == {"limit": "3"}
    rest = json.loads(run("--json", "who-can", "doc:acme/x", "--cursor", "3").stdout)
    assert rest["principals"] == WHO[3:]
    assert rest["next_cursor"] is None


def test_who_can_for_people_is_a_table(api: FakeApi) -> None:
    api.handler = paged("principals", WHO)
    result = run("who-can", "doc:acme/x", "--limit", "2")
    assert result.exit_code == 0
    assert "user:u0" in result.stdout and "user:u1" in result.stdout
    assert "user:u2" not in result.stdout
    assert "more remain: --cursor 2" in result.stderr


def test_permissions_encode_the_principal_and_follow_pages(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("permstore.services.cli.support.MAX_PAGE", 1)
    items = [
        {"resource": "doc:acme/*", "action": a, "reasons": [REASON], "expires_at": None}
        for a in ("read", "write")
    ]
    api.handler = paged("permissions", items)
    result = run("--json", "permissions", "user:a.b@c")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["permissions"] == items
    assert api.requests[0].url.raw_path.startswith(
        b"/v1/tenants/acme/principals/user%3Aa.b%40c/permissions"
    )
    assert len(api.requests) == 2


EVENTS = [
    {
        "event": {
            "type": "grant",
            "actor": "user:admin",
            "principal": "user:alice",
            "resource": "doc:acme/*",
            "permission": "read",
        },
        "recorded_at": f"2025-01-01T00:00:0{i}Z",
        "position": i,
    }
    for i in range(5)
]


def test_history_defaults_to_100_events_and_passes_filters(api: FakeApi) -> None:
    api.handler = paged("events", EVENTS, with_token=False)
    result = run(
        "--json",
        "history",
        "--principal",
        "user:alice",
        "--resource",
        "doc:acme/*",
        "--since",
        "2025-01-01T00:00:00Z",
        "--until",
        "2026-01-01T00:00:00Z",
    )
    assert result.exit_code == 0, result.output
    assert api.query() == {
        "principal": "user:alice",
        "resource": "doc:acme/*",
        "from": "2025-01-01T00:00:00Z",
        "to": "2026-01-01T00:00:00Z",
        "limit": "100",
    }
    assert json.loads(result.stdout) == {"events": EVENTS, "next_cursor": None}


def test_history_limit_follows_cursors(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permstore.services.cli.support.MAX_PAGE", 2)
    api.handler = paged("events", EVENTS, with_token=False)
    limited = json.loads(run("--json", "history", "--limit", "3").stdout)
    assert limited["events"] == EVENTS[:3]
    assert limited["next_cursor"] == "3"
    assert [api.query(i)["limit"] for i in range(len(api.requests))] == ["2", "1"]
    every = json.loads(run("--json", "history", "--all").stdout)
    assert every["events"] == EVENTS and every["next_cursor"] is None


def test_history_for_people_summarises_events(api: FakeApi) -> None:
    api.handler = paged("events", EVENTS[:1], with_token=False)
    result = run("history")
    assert result.exit_code == 0
    assert "grant" in result.stdout and "user:admin" in result.stdout
    assert "1 event\n" in result.stderr


def test_collect_without_limit_reads_until_the_last_page() -> None:
    one = PrincipalItem(principal="user:a", action="read")
    two = PrincipalItem.model_validate({"principal": "user:b", "action": "read", "extra": 2})
    pages = {
        None: Page[PrincipalItem](items=[one], next_cursor="a", token="t1"),
        "a": Page[PrincipalItem](items=[], next_cursor="b"),
        "b": Page[PrincipalItem](items=[two]),
    }
    seen: list[tuple[str | None, int]] = []

    def fetch(cursor: str | None, size: int) -> Page[PrincipalItem]:
        seen.append((cursor, size))
        return pages[cursor]

    listing = collect(fetch, limit=None, cursor=None)
    # items are what the service sent: no defaults added, unknown fields kept
    assert listing.items == [
        {"principal": "user:a", "action": "read"},
        {"principal": "user:b", "action": "read", "extra": 2},
    ]
    assert listing.next_cursor is None
    assert listing.token == "t1"
    assert [c for c, _ in seen] == [None, "a", "b"]


# --------------------------------------------------------------------------- misc


def test_token_subject_reads_a_jwt_and_ignores_api_keys() -> None:
    assert token_subject(TOKEN) == "service:ci-bot"
    assert token_subject(API_KEY) is None


def test_config_repr_hides_the_token() -> None:
    assert "sekrit" not in repr(CliConfig(token="sekrit"))


def test_cli_logging_never_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        configure_cli_logging()
        structlog.get_logger("permstore.cli").warning("cli.test", answer=42)
        captured = capsys.readouterr()
        assert captured.out == ""
        assert '"cli.test"' in captured.err
    finally:
        structlog.reset_defaults()


# --------------------------------------------------------------------------- invalid events


def test_an_invalid_event_is_exit_2_naming_the_field_without_a_request(api: FakeApi) -> None:
    result = run("grant", "alice", "doc:acme/*", "read")
    assert result.exit_code == 2
    assert "invalid_request: invalid input: principal" in result.stderr
    assert "principal: principal must be" in result.stderr
    assert api.requests == []
    as_json = run("--json", "add-member", "group:eng", "bob")
    assert as_json.exit_code == 2
    error_body = json.loads(as_json.stderr)["error"]
    assert error_body["code"] == "invalid_request"
    assert [d["field"] for d in error_body["details"]] == ["member"]


def test_a_malformed_write_answer_is_a_server_error(api: FakeApi) -> None:
    api.handler = answer(202, {"accepted": 1})
    result = run("grant", "user:alice", "doc:acme/*", "read")
    assert result.exit_code == 5 and "bad_answer" in result.stderr


# --------------------------------------------------------------------------- changes


def a_change(n: int, *, removed: bool = False) -> dict[str, Any]:
    permission = {"resource": f"doc:acme/{n}", "action": "read"}
    return {
        "tenant": "acme",
        "principal": f"user:u{n}",
        "position": f"pos-{n}",
        "recorded_at": f"2026-12-02T10:00:0{n}Z",
        "cause": f"evt-{n}",
        "added": [] if removed else [{**permission, "expires_at": "2030-01-01T00:00:00Z"}],
        "removed": [permission] if removed else [],
    }


def changes_feed(script: list[Handler | list[dict[str, Any]]]) -> Handler:
    """Each request takes the next step: a page of changes (next: the last one's position) or
    a handler; past the end of the script, Ctrl-C."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/tenants/acme/changes"
        if not script:
            raise KeyboardInterrupt
        step = script.pop(0)
        if callable(step):
            return step(request)
        after = request.url.params.get("after", "start")
        token = step[-1]["position"] if step else after
        return httpx.Response(200, json={"changes": step, "next": token})

    return handle


def test_changes_is_registered_with_list_and_follow() -> None:
    assert "changes" in run("--help").stdout
    group = run("changes", "--help")
    assert group.exit_code == 0 and "list" in group.stdout and "follow" in group.stdout


def test_changes_list_sends_after_and_limit_and_prints_the_page(api: FakeApi) -> None:
    api.handler = answer(200, {"changes": [a_change(1)], "next": "tok-2"})
    result = run("--json", "changes", "list", "--after", "tok-1", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"changes": [a_change(1)], "next": "tok-2"}
    assert api.last.url.path == "/v1/tenants/acme/changes"
    assert api.query() == {"after": "tok-1", "limit": "5"}


def test_changes_list_for_people_is_a_line_per_change_and_the_next_token(api: FakeApi) -> None:
    api.handler = answer(200, {"changes": [a_change(1), a_change(2, removed=True)], "next": "t"})
    result = run("changes", "list", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert "user:u1" in first and "+read on doc:acme/1 until 2030-01-01T00:00:00Z" in first
    assert "(cause evt-1)" in first
    assert "user:u2" in second and "-read on doc:acme/2" in second
    assert "2 changes; continue: --after t" in result.stderr
    assert api.query() == {}


def test_changes_list_limit_must_be_positive(api: FakeApi) -> None:
    assert run("changes", "list", "--limit", "0").exit_code == 2
    assert api.requests == []


def test_changes_follow_prints_each_change_once_through_a_503_until_ctrl_c(api: FakeApi) -> None:
    outage = error(503, "unavailable", "store down")
    api.handler = changes_feed(
        [[a_change(1), a_change(2)], outage, outage, outage, outage, [], [a_change(3)]]
    )
    result = run("changes", "follow", "--after", "pos-0", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [a_change(1), a_change(2), a_change(3)]
    afters = [r.url.params.get("after") for r in api.requests]
    assert afters == ["pos-0"] + ["pos-2"] * 6 + ["pos-3"]
    assert {r.url.params.get("wait") for r in api.requests} == {"30"}
    # Change 3's event may have more principals still to come: resuming after it could skip
    # them, so the resume point is the last event seen to its end.
    assert "resume with --after pos-2" in result.stderr


def test_changes_follow_for_people_prints_readable_lines(api: FakeApi) -> None:
    api.handler = changes_feed([[a_change(1, removed=True)]])
    result = run("changes", "follow")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and "-read on doc:acme/1" in result.stdout
    assert api.requests[0].url.params.get("after") is None


def test_changes_follow_ends_on_a_refusal_with_its_exit_code(api: FakeApi) -> None:
    api.handler = changes_feed([error(403, "forbidden", "the token lacks the check scope")])
    result = run("changes", "follow")
    assert result.exit_code == 3
    assert "403 forbidden" in result.stderr and result.stdout == ""
