"""Errors with stable codes, mapped to HTTP and the contract's error body only at the edge."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka.errors import KafkaError
from cassandra import DriverException, OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("permstore.api")


class ApiError(Exception):
    """An answer other than 2xx, with a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The contract's error JSON."""
    return {"error": {"code": code, "message": message, "details": details}}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """A readable field path from a pydantic location, without the union tag noise."""
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path") and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in (
            "grant",
            "revoke",
            "add_member",
            "remove_member",
            "define_role",
            "delete_role",
        ):
            continue  # the discriminator's branch name, not a field
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def rule_of(error: Any) -> str:
    """The rule a pydantic error reports, without pydantic's 'Value error, ' prefix."""
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    """Each invalid field with the rule it broke."""
    return [{"field": field_path(e.get("loc", ())), "rule": rule_of(e)} for e in errors[:100]]


STORE_DOWN_ERRORS: tuple[type[Exception], ...] = (
    NoHostAvailable,
    OperationTimedOut,
    RequestExecutionException,
    DriverException,
    KafkaError,
    TimeoutError,
    ConnectionError,
)
"""Failures of Cassandra or Kafka: answered 503 so callers retry, never 500."""


def api_error_response(exc: ApiError) -> JSONResponse:
    """The contract's error answer for an ApiError."""
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers
    )


def store_down_response(exc: Exception, path: str) -> JSONResponse:
    """503 for an unreachable store or broker, logged without internals."""
    log.warning("store.unavailable", error=type(exc).__name__, path=path)
    return JSONResponse(
        error_body("unavailable", "the permission store is unavailable; retry shortly"),
        503,
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the contract's error body; never leak internals."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        fields = ", ".join(d["field"] for d in details[:5])
        return JSONResponse(error_body("invalid_request", f"invalid input: {fields}", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    async def on_store_down(request: Request, exc: Exception) -> JSONResponse:
        return store_down_response(exc, request.url.path)

    for exc_type in STORE_DOWN_ERRORS:
        app.add_exception_handler(exc_type, on_store_down)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.failed", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return JSONResponse(error_body("internal", "internal error"), 500)
