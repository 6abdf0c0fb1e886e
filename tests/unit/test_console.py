"""Pure parts of the console: session cookies, the weekly plot, form errors, templates."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from permstore.core.identifiers import ACTION_RULE, PRINCIPAL_RULE
from permstore.schemas.events import EventBatch
from permstore.services.api.queries import ACTION_ID, PRINCIPAL_ID
from permstore.services.console.queries import (
    InvalidInputError,
    _field_errors,
    _require_identifiers,
)
from permstore.services.console.routes import templates
from permstore.services.console.session import (
    ConsoleSettings,
    SessionCodec,
    SessionData,
    load_secret,
)
from permstore.services.console.views import (
    WEEK,
    bar_plot,
    describe_event,
    grants_per_week,
    matches,
    week_start,
)

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyOmFsaWNlIn0.c2lnbmF0dXJl"


def test_session_cookie_round_trips_and_hides_the_token() -> None:
    codec = SessionCodec(b"secret-one")
    data = SessionData("token", "acme", "csrf-1", token=TOKEN)
    cookie = codec.encode(data)
    assert codec.decode(cookie) == data
    for part in TOKEN.split("."):
        assert part not in cookie
    assert "acme" not in cookie and "csrf-1" not in cookie


def test_session_cookie_refuses_tampering_and_other_keys() -> None:
    codec = SessionCodec(b"secret-one")
    cookie = codec.encode(SessionData("token", "acme", "c", token=TOKEN))
    assert SessionCodec(b"secret-two").decode(cookie) is None
    flipped = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]
    assert codec.decode(flipped) is None
    assert codec.decode("") is None and codec.decode(None) is None
    assert codec.decode("x" * 20_000) is None


def test_secret_is_created_once_private_and_required_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERMSTORE_ENV", raising=False)
    first = load_secret(ConsoleSettings(), tmp_path / "secrets")
    assert first == load_secret(ConsoleSettings(), tmp_path / "secrets")
    mode = (tmp_path / "secrets" / "console_session.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    explicit = ConsoleSettings(session_secret=SecretStr("given"))
    assert load_secret(explicit, tmp_path / "secrets") == b"given"
    monkeypatch.setenv("PERMSTORE_ENV", "production")
    with pytest.raises(RuntimeError, match="required in production"):
        load_secret(ConsoleSettings(), tmp_path / "elsewhere")


def test_proxy_trusted_ips_accept_a_comma_list() -> None:
    parsed = ConsoleSettings.model_validate({"proxy_trusted_ips": "10.0.0.1, 10.0.0.2"})
    assert parsed.proxy_trusted_ips == ["10.0.0.1", "10.0.0.2"]


def test_form_errors_name_each_field_with_the_api_rule() -> None:
    event = {
        "type": "grant",
        "event_id": "e1",
        "tenant": "acme",
        "actor": "user:a",
        "occurred_at": "2026-01-01T00:00:00Z",
        "principal": "alice",
        "resource": "doc:x",
        "permission": "read",
        "expires_at": "tomorrow",
    }
    with pytest.raises(ValidationError) as caught:
        EventBatch.model_validate({"events": [event]})
    errors = _field_errors(caught.value).errors
    assert set(errors) == {"principal", "expires_at"}
    assert "user:<id>" in errors["principal"]


def test_form_identifiers_are_held_to_the_api_parameter_types_all_at_once() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _require_identifiers({"principal": (PRINCIPAL_ID, "alice"), "action": (ACTION_ID, "Read!")})
    assert caught.value.errors == {"principal": PRINCIPAL_RULE, "action": ACTION_RULE}
    _require_identifiers({"principal": (PRINCIPAL_ID, "user:alice"), "action": (ACTION_ID, None)})


# --- the weekly plot ------------------------------------------------------------------------

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
ME = "user:me"


def naive_count(events: list[tuple[datetime, dict[str, Any]]], end: datetime) -> int:
    """Grants held by ME at end: fold every event up to end from nothing."""
    held: dict[tuple[str, str], datetime | None] = {}
    for at, event in events:
        if at > end or event.get("principal") != ME:
            continue
        key = (event["resource"], event["permission"])
        if event["type"] == "grant":
            expiry = event.get("expires_at")
            held[key] = datetime.fromisoformat(expiry) if expiry else None
        else:
            held.pop(key, None)
    return sum(1 for expiry in held.values() if expiry is None or expiry > end)


event_strategy = st.tuples(
    st.integers(min_value=0, max_value=60 * 24 * 7 * 10),  # minutes after START, ten weeks
    st.sampled_from(["grant", "revoke"]),
    st.sampled_from([ME, "user:other"]),
    st.sampled_from(["doc:a", "doc:b", "doc:c/*"]),
    st.sampled_from(["read", "role:editor"]),
    st.one_of(st.none(), st.integers(min_value=1, max_value=60 * 24 * 30)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(event_strategy, max_size=30))
def test_grants_per_week_matches_a_naive_fold(raw: list[tuple[Any, ...]]) -> None:
    events = []
    for minutes, kind, principal, resource, permission, lasts in sorted(raw, key=lambda r: r[0]):
        at = START + timedelta(minutes=minutes)
        body: dict[str, Any] = {
            "type": kind,
            "principal": principal,
            "resource": resource,
            "permission": permission,
        }
        if kind == "grant" and lasts is not None:
            body["expires_at"] = (at + timedelta(minutes=lasts)).isoformat()
        events.append((at, body))
    now = START + WEEK * 11 + timedelta(hours=5)
    weeks = grants_per_week(ME, events, now)
    if not events:
        assert weeks == []
        return
    assert weeks[0].week == min(week_start(events[0][0]), week_start(now) - WEEK * 11)
    assert weeks[-1].week == week_start(now)
    for item in weeks:
        assert item.held == naive_count(events, min(item.week + WEEK, now))


def test_grants_per_week_keeps_the_last_52_weeks() -> None:
    events = [(START, {"type": "grant", "principal": ME, "resource": "a:b", "permission": "r"})]
    weeks = grants_per_week(ME, events, START + WEEK * 80)
    assert len(weeks) == 52 and all(w.held == 1 for w in weeks)


def grant_of(resource: str) -> dict[str, Any]:
    """A grant event to ME."""
    return {"type": "grant", "principal": ME, "resource": resource, "permission": "r"}


def test_bar_plot_stays_inside_its_box() -> None:
    events = [
        (
            START + WEEK * i,
            {"type": "grant", "principal": ME, "resource": f"a:{i}", "permission": "r"},
        )
        for i in range(8)
    ]
    plot = bar_plot(grants_per_week(ME, events, START + WEEK * 8))
    assert plot.peak == 8
    tallest = max(plot.bars, key=lambda b: b.height)
    assert tallest.value == 8 and tallest.y >= 0
    for bar in plot.bars:
        assert bar.x >= 0 and bar.x + bar.width <= plot.width
        assert bar.y + bar.height == pytest.approx(plot.baseline)


def test_descriptions_and_search() -> None:
    assert describe_event({"type": "add_member", "group": "group:g", "member": "user:a"}) == (
        "add user:a to group:g"
    )
    text = describe_event(
        {"type": "revoke", "principal": "user:a", "resource": "doc:x", "permission": "read"}
    )
    assert text == "revoke read on doc:x from user:a"
    assert matches("eng READ", "doc:acme/eng/*", "read")
    assert not matches("write", "doc:acme/eng/*", "read")


# --- the findings page against the contract's shape (the service is not in this build) --------


class FakeRequest:
    """Enough of a request for the templates' url_for."""

    def url_for(self, name: str, **params: Any) -> str:
        return f"/console/static/{params['path']}"


def render(name: str, **context: Any) -> str:
    base = {"request": FakeRequest(), "caller": None, "csrf": "tok", "nav": "findings"}
    return templates.get_template(name).render(**base, **context)


def test_findings_page_lists_findings_with_revoke_selection() -> None:
    finding = {
        "kind": "grant",
        "grant": {
            "principal": "user:old",
            "resource": "doc:x/*",
            "permission": "read",
            "expires_at": None,
        },
        "granted_at": "2025-01-01T00:00:00Z",
        "granted_by": "user:admin",
        "last_used_at": None,
        "uses": 0,
        "recommendation": {"event": {"type": "revoke", "principal": "user:old"}},
    }
    html = render(
        "findings.html",
        available=True,
        items=[(finding, '{"type":"revoke","principal":"user:old"}')],
        form={"days": "90", "kind": ""},
        errors={},
        done=None,
    )
    assert 'name="finding"' in html and "&#34;type&#34;:&#34;revoke&#34;" in html
    assert "user:old" in html and "never" in html and 'name="confirm"' in html
    assert 'name="csrf" value="tok"' in html
    absent = render(
        "findings.html", available=False, items=[], form={"days": "90", "kind": ""}, errors={}
    )
    assert "Findings need the audit scope" in absent


def test_templates_carry_no_inline_script_or_style() -> None:
    folder = Path(__file__).resolve().parents[2] / "services" / "console" / "templates"
    for path in folder.glob("*.html"):
        text = path.read_text()
        assert "<script" not in text and "style=" not in text and "<style" not in text, path


# --- the trusted identity proxy -------------------------------------------------------------


def proxied_request(client: str, headers: dict[str, str]) -> Any:
    """A bare request from client with headers."""
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/console/access",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (client, 5000),
        "query_string": b"",
    }
    return Request(scope)


def test_proxy_identity_is_off_by_default_and_trusted_only_from_the_proxy() -> None:
    from permstore.services.console.routes import _proxy_caller

    header = {"X-Forwarded-Email": "alice@example.com"}
    assert _proxy_caller(proxied_request("127.0.0.1", header), ConsoleSettings()) is None
    on = ConsoleSettings(
        proxy_header="X-Forwarded-Email", proxy_tenant="acme", proxy_scopes="check,audit"
    )
    caller = _proxy_caller(proxied_request("127.0.0.1", header), on)
    assert caller is not None
    assert caller.subject == "user:alice@example.com" and caller.tenant == "acme"
    assert {s.value for s in caller.scopes} == {"check", "audit"}
    assert _proxy_caller(proxied_request("10.9.9.9", header), on) is None
    assert _proxy_caller(proxied_request("127.0.0.1", {}), on) is None
