"""Log lines carry the request id of the HTTP request they belong to."""

from __future__ import annotations

from asgi_correlation_id.context import correlation_id

from permstore.adapters.logging import add_request_id


def test_request_id_is_added_inside_a_request_only() -> None:
    """Outside a request nothing is added; inside, the X-Request-ID value is."""
    assert "request_id" not in add_request_id(None, "info", {"event": "x"})
    reset = correlation_id.set("abc123")
    try:
        assert add_request_id(None, "info", {"event": "x"})["request_id"] == "abc123"
    finally:
        correlation_id.reset(reset)
