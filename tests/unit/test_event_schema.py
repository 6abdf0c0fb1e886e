"""The event models: grammar of contract sections 1-2, and the published JSON Schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from permstore.schemas.events import parse_event
from permstore.schemas.generate import SCHEMA_PATH, render
from tests.strategies import histories, labelled_poison_records


def test_checked_in_schema_matches_models() -> None:
    """Publishers validate against the file; it must be regenerated with the models."""
    assert SCHEMA_PATH.read_text() == render(), "run: python -m permstore.schemas.generate"


@settings(max_examples=300)
@given(histories(max_events=10))
def test_generated_valid_events_parse(events: list[dict[str, object]]) -> None:
    """Every contract-valid event is accepted."""
    for event in events:
        parse_event(json.dumps(event))


@settings(max_examples=500)
@given(labelled_poison_records())
def test_poison_is_refused_with_a_reason(poison: tuple[str, bytes]) -> None:
    """Every invalid payload is refused, naming what is wrong."""
    label, payload = poison
    with pytest.raises(ValidationError) as caught:
        parse_event(payload)
    assert caught.value.errors(), label


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("principal", "user:", "principal must be"),
        ("principal", "robot:x", "principal must be"),
        ("resource", "doc:a//b", "resource pattern must be"),
        ("resource", "doc:" + "/".join(["s"] * 17), "resource pattern must be"),
        ("resource", "Doc:a", "resource pattern must be"),
        ("resource", "doc:a*", "resource pattern must be"),
        ("permission", "role:", "permission must be"),
        ("permission", "Read", "permission must be"),
        ("tenant", "Acme", "tenant must match"),
        ("expires_at", "2026-01-01", "RFC 3339"),
        ("expires_at", 1767225600, "RFC 3339"),
    ],
)
def test_grant_field_rules(field: str, value: object, rule: str) -> None:
    """A bad field is named with its rule."""
    event = {
        "event_id": "e1",
        "tenant": "acme",
        "type": "grant",
        "actor": "user:admin",
        "occurred_at": "2026-01-01T00:00:00Z",
        "principal": "user:alice",
        "resource": "doc:a/*",
        "permission": "read",
        field: value,
    }
    with pytest.raises(ValidationError) as caught:
        parse_event(json.dumps(event))
    errors = caught.value.errors()
    assert any(field in e["loc"] and rule in e["msg"] for e in errors), errors


@pytest.mark.parametrize(
    "pattern", ["doc:a", "doc:a/b/c", "doc:a/*", "doc:*", "doc:" + "/".join(["s"] * 16)]
)
def test_valid_patterns(pattern: str) -> None:
    """Resources and both wildcard forms are valid grant patterns."""
    parse_event(
        json.dumps(
            {
                "event_id": "e1",
                "tenant": "acme",
                "type": "grant",
                "actor": "user:admin",
                "occurred_at": "2026-01-01T00:00:00+02:00",
                "principal": "group:eng",
                "resource": pattern,
                "permission": "role:editor",
            }
        )
    )
