"""Pure core helpers: pattern expansion, consistency tokens, reasons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permstore.core.consistency import LogPoint, MalformedTokenError, decode_token, encode_token
from permstore.core.decisions import decide_from_rows, micros_to_rfc3339
from permstore.core.identifiers import is_pattern, is_resource, pattern_matches, patterns_matching

SEGMENT = st.text("ab.-_@9", min_size=1, max_size=4)


def test_patterns_of_a_resource_are_itself_ancestors_and_type() -> None:
    """A check reads exactly the resource, each ancestor `p/*` and `T:*`."""
    assert patterns_matching("doc:a/b/c") == ["doc:a/b/c", "doc:a/b/*", "doc:a/*", "doc:*"]
    assert patterns_matching("repo:r") == ["repo:r", "repo:*"]


@given(st.lists(SEGMENT, min_size=1, max_size=16))
def test_pattern_expansion_is_bounded_and_valid(segments: list[str]) -> None:
    """At most 17 patterns, all valid, the first the resource itself."""
    resource = "doc:" + "/".join(segments)
    assert is_resource(resource)
    patterns = patterns_matching(resource)
    assert len(patterns) == len(segments) + 1 <= 17
    assert all(is_pattern(p) for p in patterns)


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        ("doc:a/*", "doc:a/b", True),
        ("doc:a/*", "doc:a", False),
        ("doc:a/*", "doc:ab/c", False),
        ("doc:*", "doc:a", True),
        ("doc:*", "repo:a", False),
        ("doc:a", "doc:a", True),
        ("doc:a/b/*", "doc:a/b/c/d", True),
    ],
)
def test_pattern_matching(pattern: str, resource: str, matches: bool) -> None:
    """Rule 2 of contract section 3."""
    assert pattern_matches(pattern, resource) is matches


@given(st.integers(-1, 1000), st.integers(-1, 2**40))
def test_tokens_round_trip(partition: int, offset: int) -> None:
    """A token names exactly the point it was made from."""
    point = LogPoint(partition, offset)
    assert decode_token("acme", encode_token("acme", point)) == point


@pytest.mark.parametrize("token", ["", "abc", "ps1.!!!", "ps1.Zm9v", "ps1." + "A" * 200])
def test_malformed_tokens_are_refused(token: str) -> None:
    """Anything we did not issue is refused."""
    with pytest.raises(MalformedTokenError):
        decode_token("acme", token)


def test_token_of_another_tenant_is_refused() -> None:
    """A token names one tenant's log."""
    with pytest.raises(MalformedTokenError):
        decode_token("other", encode_token("acme", LogPoint(1, 5)))


def test_covers_needs_same_partition_and_offset() -> None:
    """A view covers a token when it applied at least that offset of that partition."""
    assert LogPoint(2, 10).covers(LogPoint(2, 10))
    assert not LogPoint(2, 9).covers(LogPoint(2, 10))
    assert LogPoint(-1, -1).covers(LogPoint(-1, -1))


def test_reasons_skip_expired_sources() -> None:
    """Only sources with no expiry or a later one allow."""
    rows = [("doc:a/*", (("group:eng|role:editor", 0), ("user:al|read", 100)))]
    reasons = decide_from_rows("user:al", rows, now_us=100)
    assert [r.as_json()["kind"] for r in reasons] == ["group"]
    assert reasons[0].via_group == "group:eng" and reasons[0].via_role == "editor"
    assert decide_from_rows("user:al", rows, now_us=99)[1].subject == "user:al"
    assert micros_to_rfc3339(0) is None
    assert micros_to_rfc3339(1_767_225_600_000_000) == "2026-01-01T00:00:00Z"
