"""The OpenAPI description of the routes: the error catalogue with an example of each code,
the shared texts and the documented path and query parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from permstore.core.identifiers import PRINCIPAL_RULE
from permstore.schemas.events import Principal, Tenant
from permstore.services.api.errors import error_body
from permstore.services.api.models import ErrorResponse


def error_example(summary: str, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A named OpenAPI example of the error body, built by the handlers' own error_body."""
    return {"summary": summary, "value": error_body(code, message, details)}


RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}

# Every error status a route may answer, with an example of each code it carries; the codes
# are the ones the handlers, dependencies and middleware really produce.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ErrorResponse,
        "description": text,
        "content": {"application/json": {"examples": cases}},
        **({"headers": headers} if headers else {}),
    }
    for status, text, cases, headers in (
        (
            400,
            "Malformed cursor or consistency token",
            {
                "invalid_cursor": error_example(
                    "A cursor this endpoint did not issue",
                    "invalid_cursor",
                    "cursor is not one this endpoint issued",
                    [
                        {
                            "field": "cursor",
                            "rule": "must be a next_cursor returned by this endpoint",
                        }
                    ],
                ),
                "invalid_token": error_example(
                    "A consistency token of another tenant or service",
                    "invalid_token",
                    "consistency token belongs to another tenant",
                    [
                        {
                            "field": "consistency.at_least",
                            "rule": "must be a token issued by this service",
                        }
                    ],
                ),
            },
            {},
        ),
        (
            401,
            "Missing, invalid or expired bearer token",
            {
                "unauthenticated": error_example(
                    "The bearer token has expired",
                    "unauthenticated",
                    "a valid bearer token is required (expired)",
                )
            },
            {"WWW-Authenticate": {"description": "Always Bearer", "schema": {"type": "string"}}},
        ),
        (
            403,
            "Outside the token's tenant or scopes",
            {
                "forbidden": error_example(
                    "The token is for another tenant",
                    "forbidden",
                    "this token may not do that (wrong_tenant)",
                )
            },
            {},
        ),
        (
            413,
            "Body over 4 MiB",
            {
                "too_large": error_example(
                    "The body is over 4 MiB", "too_large", "request body over 4 MiB", []
                )
            },
            {},
        ),
        (
            422,
            "Invalid input: each field and the rule it broke",
            {
                "invalid_request": error_example(
                    "A field breaks its rule",
                    "invalid_request",
                    "invalid input: principal",
                    [{"field": "principal", "rule": PRINCIPAL_RULE}],
                )
            },
            {},
        ),
        (
            429,
            "Rate limit of the token's subject exceeded",
            {
                "rate_limited": error_example(
                    "Too many requests", "rate_limited", "too many requests"
                )
            },
            RETRY_AFTER,
        ),
        (
            503,
            "Store or log unavailable, or consistency wait exceeded",
            {
                "unavailable": error_example(
                    "Cassandra or Kafka does not answer",
                    "unavailable",
                    "the permission store is unavailable; retry shortly",
                ),
                "consistency_timeout": error_example(
                    "The view did not reach consistency.at_least in time",
                    "consistency_timeout",
                    "the view has not applied the requested token within 5 s; retry later",
                    {"reached": "ps1.ODIyYjMzYWQ6MzoxMDM4"},
                ),
            },
            RETRY_AFTER,
        ),
    )
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: only the statuses it can really give."""
    return {status: ERRORS[status] for status in statuses}


# Statuses by kind of route: a body can be too large only where there is one, and only reads
# that take a cursor or a consistency token can find it malformed.
BODY_READ_ERRORS = errors(400, 401, 403, 413, 422, 429, 503)
WRITE_ERRORS = errors(401, 403, 413, 422, 429, 503)
PAGED_ERRORS = errors(400, 401, 403, 422, 429, 503)
READ_ERRORS = errors(401, 403, 422, 429, 503)

PAGING_TEXT = (
    "Paged: `limit` items a page (default 100, at most 1000); pass `next_cursor` as `cursor` "
    "until it is null to see every item exactly once."
)
SCOPE_TEXT = "Needs a bearer token for the tenant with the `{}` scope."

# Identifier parameters carry the event models' own annotated types, so a path or query value is
# held to the same grammar, and refused with the same field and rule, as an event field.
TenantPath = Annotated[Tenant, Path(description="Tenant id", examples=["acme"])]
PrincipalPath = Annotated[
    Principal, Path(description="user:<id>, service:<id> or group:<id>", examples=["user:alice"])
]
Limit = Annotated[
    int, Query(ge=1, le=1000, description="Page size (default 100, at most 1000)", examples=[100])
]


def cursor_query(example: str) -> Any:
    """The cursor parameter, with an example of the endpoint's own cursors."""
    return Query(
        max_length=4096,
        description="next_cursor of the previous page; omit for the first page",
        examples=[example],
    )


PermissionsCursor = Annotated[
    str | None, cursor_query("WyJwZXJtIiwiZG9jOmFjbWUvZW5nLyoiLCJyZWFkIl0")
]
PrincipalsCursor = Annotated[str | None, cursor_query("WyJ3aG8iLCJ1c2VyOmFsaWNlIiwicmVhZCJd")]
AuditCursor = Annotated[str | None, cursor_query("WyJhdWRpdCIsMTc2NzIyNTYwMDAwMDAwMCwxMDQxXQ")]
