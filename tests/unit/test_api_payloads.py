"""The hot-path answers are serialized by hand; they must be exactly their declared models."""

from __future__ import annotations

import orjson

from permstore.core.decisions import Reason
from permstore.services.api.models import BatchCheckResponse, CheckResponse
from permstore.services.api.queries import batch_payload, check_payload, json_response

DIRECT = Reason("user:al", "user:al", "doc:a/*", "role:editor", 1_800_000_000_000_000)
GROUP = Reason("user:al", "group:org", "doc:*", "read", 0, ("group:team", "group:org"))
UNKNOWN_CHAIN = Reason("user:al", "group:org", "doc:*", "list", 0)


def test_check_payload_is_exactly_a_check_response() -> None:
    """Every key the model declares, no other, with the model's types."""
    for reasons in ([], [DIRECT], [DIRECT, GROUP, UNKNOWN_CHAIN]):
        body = orjson.loads(json_response(check_payload("ps1.x", reasons)).body)
        assert CheckResponse.model_validate(body).model_dump(mode="json") == body
        assert body["allowed"] is bool(reasons)


def test_batch_payload_is_exactly_a_batch_response_in_order() -> None:
    """Answers keep request order; each is a BatchResult."""
    answers = [[GROUP], [], [DIRECT]]
    body = orjson.loads(json_response(batch_payload("ps1.y", answers)).body)
    assert BatchCheckResponse.model_validate(body).model_dump(mode="json") == body
    assert [r["allowed"] for r in body["results"]] == [True, False, True]
    assert body["results"][0]["reasons"][0]["via_chain"] == ["group:team", "group:org"]
    assert body["results"][2]["reasons"][0]["via_chain"] is None
