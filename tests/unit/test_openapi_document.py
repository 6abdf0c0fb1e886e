"""The OpenAPI document is complete: every route and model described, with valid examples.

The document is built from the application object alone; `app.openapi()` does not run the
lifespan, so neither Kafka nor Cassandra is needed. Examples are checked twice: against the
document's own JSON Schema (what clients and schemathesis see) and by the pydantic models in
strict JSON mode (which also apply the identifier rules a JSON Schema cannot express).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel

from permstore.adapters.kafka_lag import LagProbe
from permstore.core import events
from permstore.services.api import models
from permstore.services.api.deps import Services
from permstore.services.api.main import Readiness, create_app

# Contract section 4: these answer without a token and outside /v1, so the API's error
# conventions (401/403/429 and the error body) do not apply to them.
OPERATIONS = {"/healthz", "/readyz", "/metrics"}
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


def models_of(module: ModuleType, *abstract: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model a module defines, but the abstract bases named."""
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
        and value not in abstract
    ]


def api_models() -> list[type[BaseModel]]:
    """Every model of the API module and every event model, the ones the document shows."""
    return models_of(models, models.Strict) + models_of(events, events.EventBase)


def media_example(media: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """True when a media type carries an example itself or through its referenced schema."""
    if media.get("example") is not None or media.get("examples"):
        return True
    ref = media.get("schema", {}).get("$ref", "")
    return bool(schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples"))


def inline_example(document: dict[str, Any], path: str, status: str) -> Any:
    """The example a GET operation documents inline for one status, of its only media type."""
    content = document["paths"][path]["get"]["responses"][status]["content"]
    (media,) = content.values()
    return media["example"]


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
    missing = {model.__name__ for model in models_of(events, events.EventBase)} - set(schemas)
    assert not missing, f"event models absent from the document: {missing}"
    for name, schema in schemas.items():
        assert schema.get("description", "").strip(), f"schema {name} has no description"
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
    assert len(found) >= 22, "the model modules were not scanned"
    for model in found:
        for example in model_examples(model):
            # Strict JSON mode: a "1" for an int or a missing required field fails here.
            # Events are parsed the way the service parses them (parse_event, lax mode):
            # strict mode would refuse every time, as their validators hand on a str.
            strict = model.__module__ == models.__name__
            parsed = model.model_validate_json(json.dumps(example), strict=strict)
            # Response models ignore unknown keys, so a misspelt or stale key in an example
            # would pass validation; the round trip shows every key is a real field.
            dumped = parsed.model_dump(mode="json", exclude_unset=True)
            assert dumped == example, f"{model.__name__} example does not round-trip"


def test_every_response_has_a_description_and_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert {"200", "202"} & set(responses), f"{method} {path} documents no success response"
        for status, response in responses.items():
            where = f"{method} {path} {status}"
            assert response.get("description", "").strip(), f"{where} has no description"
            assert response.get("content"), f"{where} documents no body"
            for media_type, media in response["content"].items():
                assert media_example(media, schemas), f"{where} {media_type} has no example"
                if "example" in media and media.get("schema"):
                    check = validator(document, media["schema"])
                    assert check.is_valid(media["example"]), f"{where}: example breaks schema"


def test_only_the_operations_routes_are_outside_v1(document: dict[str, Any]) -> None:
    outside = {path for path in document["paths"] if not path.startswith("/v1/")}
    assert outside == OPERATIONS


def test_the_readiness_examples_are_what_readyz_answers(document: dict[str, Any]) -> None:
    """Each documented body is the report a probe with the example's lag really produces."""
    for status in ("200", "503"):
        example = inline_example(document, "/readyz", status)

        async def ping() -> None:
            return None

        async def lag(group: str, total: int = example["checks"]["lag"]) -> dict[int, int]:
            return {0: total}

        services = SimpleNamespace(
            reader=SimpleNamespace(generation=example["generation"], ping=ping),
            settings=SimpleNamespace(readiness_max_lag=10_000, group_for=str),
            touches=SimpleNamespace(following=True),
        )
        probe = SimpleNamespace(lag=lag)
        readiness = Readiness(cast(Services, services), cast(LagProbe, probe))
        assert asyncio.run(readiness.report()) == (int(status), example)


async def get_without_lifespan(*paths: str) -> list[httpx.Response]:
    """Answers of the app to GETs; the transport runs no lifespan, so no Kafka or Cassandra."""
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return [await client.get(path) for path in paths]


def test_the_health_and_metrics_examples_match_the_answers(document: dict[str, Any]) -> None:
    health, answer = asyncio.run(get_without_lifespan("/healthz", "/metrics"))
    assert health.json() == inline_example(document, "/healthz", "200")
    (media_type,) = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert answer.headers["content-type"].startswith(media_type)
    example = inline_example(document, "/metrics", "200")
    declared = [line for line in example.splitlines() if line.startswith("# ")]
    assert declared and all(line in answer.text.splitlines() for line in declared), declared


def test_every_error_response_has_valid_examples(document: dict[str, Any]) -> None:
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    check = validator(document, error_schema)
    for path, method, operation in operations(document):
        if path in OPERATIONS:
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
