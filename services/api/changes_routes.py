"""The change stream over HTTP (contract section 6): pages, long-poll and Server-Sent Events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel, Field

from permstore.adapters.cassandra_layout.changes_reader import ChangeStore
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.core.changes import change_page
from permstore.core.consistency import LogPoint, MalformedTokenError, decode_change_point
from permstore.services.api.deps import CheckCaller, ServicesDep
from permstore.services.api.errors import ApiError
from permstore.services.api.models import examples
from permstore.services.api.openapi_docs import PAGED_ERRORS, TenantPath

router = APIRouter(prefix="/v1", tags=["changes"])

POLL_SECONDS = 0.02
"""How often a waiting request looks at the tenant's position. The position itself is read
from Cassandra at most every 50 ms per tenant and API worker, shared by every waiting follower
(reader.position), so followers cost no reads of their own while nothing changes."""
STREAM_PAGE = 200
STREAM_WAIT_SECONDS = 15.0
"""An idle event stream sends a keep-alive comment this often."""

EXAMPLE_CHANGE: dict[str, Any] = {
    "tenant": "acme",
    "principal": "user:alice",
    "position": "ps1.MDNkNjJhOGE6MzoxMjA",
    "recorded_at": "2026-04-05T12:00:00.123456Z",
    "cause": "evt-42",
    "added": [{"resource": "doc:acme/eng/*", "action": "read", "expires_at": None}],
    "removed": [],
}


class ChangesPage(BaseModel):
    """Changes after a position, oldest first, and the token to ask with next."""

    model_config = examples({"changes": [EXAMPLE_CHANGE], "next": "ps1.MDNkNjJhOGE6MzoxMjA"})

    changes: list[dict[str, Any]] = Field(
        description="One record per (principal, event): tenant, principal, position (the "
        "event's consistency token), recorded_at, cause (event id), added [{resource, action, "
        "expires_at}], removed [{resource, action}]"
    )
    next: str = Field(description="Pass as `after` to get the changes after this page")


def change_store(request: Request) -> ChangeStore:
    """This process's reader of the change tables."""
    store: ChangeStore = request.app.state.change_store
    return store


def _start(tenant: str, token: str | None, field: str) -> tuple[LogPoint, int | None] | None:
    if token is None:
        return None
    try:
        return decode_change_point(tenant, token)
    except MalformedTokenError as exc:
        raise ApiError(
            400,
            "invalid_token",
            str(exc),
            [{"field": field, "rule": "must be a position or next token issued by this service"}],
        ) from exc


async def read_changes(
    reader: ViewReader,
    store: ChangeStore,
    tenant: str,
    after: tuple[LogPoint, int | None] | None,
    limit: int,
    wait: float,
) -> tuple[list[tuple[str, str]], str]:
    """The changes after a position (the tenant's current one when None), waiting up to wait
    seconds for the first. Only events whose state is written are shown: their change rows
    were all stored before it, so a follower never skips a row still being written."""
    deadline = time.monotonic() + wait
    current = await reader.position(tenant)
    start = after if after is not None else (current, None)
    looked_upto: int | None = None
    rows: list[tuple[int, int, str]] = []
    while True:
        if current.offset != looked_upto:
            looked_upto = current.offset
            rows = await store.after(tenant, start[0].offset, start[1], current.offset, limit + 1)
        if rows or time.monotonic() >= deadline:
            return change_page(tenant, current, start, rows, limit)
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        current = await reader.position(tenant)


@router.get(
    "/tenants/{tenant}/changes",
    response_model=ChangesPage,
    responses={
        **PAGED_ERRORS,
        200: {
            "description": "A page of changes (JSON), or with `Accept: text/event-stream` "
            "a stream of Server-Sent Events whose ids are tokens and whose data are records",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": "id: ps1.MDNkNjJhOGE6MzoxMjA\ndata: "
                    + orjson.dumps(EXAMPLE_CHANGE).decode()
                    + "\n\n",
                }
            },
        },
    },
    summary="Follow effective-permission changes",
    description=(
        "Every change of a principal's effective (resource pattern, action) set after `after` "
        "(a position, `next` or event id of this endpoint; omitted: the tenant's current "
        "position), oldest first, waiting up to `wait` seconds for the first. Following "
        "`next` yields each change exactly once. With `Accept: text/event-stream` the records "
        "stream as Server-Sent Events; a reconnect with `Last-Event-ID` resumes. Records are "
        "kept for PERMSTORE_CHANGES_RETENTION_DAYS (7). Needs the `check` scope."
    ),
)
async def changes(
    request: Request,
    tenant: TenantPath,
    caller: CheckCaller,
    services: ServicesDep,
    after: Annotated[
        str | None,
        Query(
            max_length=128,
            description="Position or `next` token to read after",
            examples=["ps1.MDNkNjJhOGE6MzoxMjA"],
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=1000,
            description="Most changes returned (default 100, at most 1000)",
            examples=[100],
        ),
    ] = 100,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=30,
            description="Seconds to wait for the first change (at most 30)",
            examples=[10],
        ),
    ] = 0,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=128,
            description="Server-Sent Events: the last id received",
            examples=["ps1.MDNkNjJhOGE6MzoxMjA"],
        ),
    ] = None,
) -> Response:
    """Changes after a position: a page (long-polled with `wait`) or an event stream."""
    store = change_store(request)
    reader = services.reader
    streaming = "text/event-stream" in request.headers.get("accept", "")
    if not streaming:
        items, following = await read_changes(
            reader, store, tenant, _start(tenant, after, "after"), limit, wait
        )
        # The records are stored as the JSON they are published as: sent without re-encoding.
        body = b'{"changes":[%s],"next":%s}' % (
            b",".join(record.encode() for _, record in items),
            orjson.dumps(following),
        )
        return Response(body, media_type="application/json")
    resume = after if after is not None else last_event_id
    start = _start(tenant, resume, "after" if after is not None else "Last-Event-ID")
    if start is None:
        start = (await reader.position(tenant), None)

    async def stream() -> AsyncIterator[bytes]:
        position = start
        while True:
            items, following = await read_changes(
                reader, store, tenant, position, STREAM_PAGE, STREAM_WAIT_SECONDS
            )
            if not items:
                yield KEEPALIVE_COMMENT
            for cursor, record in items:
                yield format_sse_event(data_str=record, id=cursor)
            position = decode_change_point(tenant, following)

    return EventSourceResponse(stream(), headers={"Cache-Control": "no-store"})
