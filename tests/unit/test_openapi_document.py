"""The OpenAPI document is complete: every route and model described, with valid examples.

The document is built from the application object alone; `app.openapi()` does not run the
lifespan, so neither Kafka nor Cassandra is needed. Examples are checked twice: against the
document's own JSON Schema (what clients and schemathesis see) and by the pydantic models in
strict JSON mode (which also apply the identifier rules a JSON Schema cannot express).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel

from services.api import models
from services.api.main import create_app

# The event models are the published event contract (schemas/events.py, mirrored by the
# checked-in schemas/event.schema.json), so their examples and field descriptions are added
# there, with the schema file regenerated, rather than by the API.
EVENT_SCHEMAS = {
    "EventBatch",
    "GrantEvent",
    "RevokeEvent",
    "AddMemberEvent",
    "RemoveMemberEvent",
    "DefineRoleEvent",
    "DeleteRoleEvent",
}
# Operational endpoints answer plain dicts or Prometheus text, not a documented model.
OPERATIONS_WITHOUT_MODEL = {"/healthz", "/readyz", "/metrics"}
# Codes the handlers, dependencies and middleware really send (services/api/errors.py and
# the ApiError raised elsewhere), so the documented examples cannot invent one.
ERROR_CODES = {
    "invalid_cursor",
    "invalid_token",
    "unauthenticated",
    "forbidden",
    "too_large",
    "invalid_request",
    "rate_limited",
    "unavailable",
    "consistency_timeout",
    "not_found",
    "method_not_allowed",
    "http_error",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The OpenAPI document of a freshly built app."""
    return create_app().openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every operation."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of schema whose $refs resolve inside the document's components."""
    root = {**schema, "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def api_models() -> list[type[BaseModel]]:
    """Every model the API module defines, but the abstract strict base."""
    return [
        value
        for value in vars(models).values()
        if inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == models.__name__
        and value is not models.Strict
    ]


def model_examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The examples a model declares in its config."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), f"{model.__name__} declares no json_schema_extra"
    found = extra.get("examples")
    assert isinstance(found, list) and found, f"{model.__name__} declares no examples"
    assert all(isinstance(example, dict) for example in found), model.__name__
    return [dict(example) for example in found if isinstance(example, dict)]


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        assert operation.get("summary", "").strip(), f"{method} {path} has no summary"
        assert operation.get("description", "").strip(), f"{method} {path} has no description"


def test_every_parameter_has_a_description_and_valid_examples(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            where = f"{method} {path} parameter {parameter['name']}"
            schema = parameter["schema"]
            assert parameter.get("description") or schema.get("description"), where
            examples = schema.get("examples")
            assert examples, f"{where} has no examples"
            check = validator(document, schema)
            for example in examples:
                assert check.is_valid(example), f"{where}: example {example!r} is invalid"


def test_every_schema_has_a_description_and_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas) >= EVENT_SCHEMAS, "the exemptions name schemas the document lacks"
    for name, schema in schemas.items():
        assert schema.get("description", "").strip(), f"schema {name} has no description"
        if name in EVENT_SCHEMAS:
            continue
        assert schema.get("examples"), f"schema {name} has no examples"
        for prop, spec in schema.get("properties", {}).items():
            assert spec.get("description", "").strip(), f"{name}.{prop} has no description"


def test_schema_examples_validate_against_their_schema(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        check = validator(document, schema)
        for example in schema.get("examples", []):
            errors = [error.message for error in check.iter_errors(example)]
            assert not errors, f"an example of {name} breaks its schema: {errors}"


def test_every_api_model_has_examples_the_model_accepts() -> None:
    found = api_models()
    assert len(found) >= 15, "the model module was not scanned"
    for model in found:
        for example in model_examples(model):
            # Strict JSON mode: a "1" for an int or a missing required field fails here.
            parsed = model.model_validate_json(json.dumps(example), strict=True)
            # Response models ignore unknown keys, so a misspelt or stale key in an example
            # would pass validation; the round trip shows every key is a real field.
            dumped = parsed.model_dump(mode="json", exclude_unset=True)
            assert dumped == example, f"{model.__name__} example does not round-trip"


def test_every_success_response_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, method, operation in operations(document):
        if path in OPERATIONS_WITHOUT_MODEL:
            continue
        successes = {s: r for s, r in operation["responses"].items() if s in ("200", "202")}
        assert successes, f"{method} {path} documents no success response"
        for status, response in successes.items():
            media = response["content"]["application/json"]
            if media.get("example") is not None or media.get("examples"):
                continue
            ref = media["schema"].get("$ref", "")
            target = schemas.get(ref.rsplit("/", 1)[-1], {})
            assert target.get("examples"), f"{method} {path} {status} has no example"


def test_every_error_response_has_valid_examples(document: dict[str, Any]) -> None:
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    check = validator(document, error_schema)
    for path, method, operation in operations(document):
        if path in OPERATIONS_WITHOUT_MODEL:
            continue
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert {"401", "403", "422", "429", "503"} <= set(errors), f"{method} {path}"
        for status, response in errors.items():
            where = f"{method} {path} {status}"
            assert response.get("description", "").strip(), where
            media = response["content"]["application/json"]
            assert media["schema"] == error_schema, where
            examples = media.get("examples")
            assert examples, f"{where} has no examples"
            for example in examples.values():
                body = example["value"]
                assert check.is_valid(body), f"{where}: {body} is not an error body"
                models.ErrorResponse.model_validate_json(json.dumps(body), strict=True)
                assert body["error"]["code"] in ERROR_CODES, where


def test_an_example_without_a_required_field_is_caught(document: dict[str, Any]) -> None:
    """The example checks above would catch a broken example, not pass everything."""
    schema = document["components"]["schemas"]["CheckRequest"]
    broken = {k: v for k, v in schema["examples"][0].items() if k != "principal"}
    assert not validator(document, schema).is_valid(broken)
