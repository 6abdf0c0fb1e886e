"""The in-memory permstore as an ASGI app and as an httpx transport."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from .fake import ContractHandler, InMemoryPermstore, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _encode(answer: Response) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    payload = json.dumps(answer.body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
    return payload, headers


class PermstoreASGI:
    """An ASGI 3 application answering the permstore HTTP contract from memory."""

    def __init__(self, store: InMemoryPermstore | None = None) -> None:
        self.store = store if store is not None else InMemoryPermstore()
        self.handler = ContractHandler(self.store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (lifespan events are acknowledged)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        answer = self.handler(
            scope["method"],
            raw_path.decode().split("?", 1)[0],
            scope.get("query_string", b"").decode(),
            headers,
            body,
        )
        payload, response_headers = _encode(answer)
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": payload})


def mock_transport(store: InMemoryPermstore) -> httpx.MockTransport:
    """An httpx transport (sync and async) answering from store, for PermstoreClient(transport=)."""
    handler = ContractHandler(store)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = handler(
            request.method,
            request.url.raw_path.decode().split("?", 1)[0],
            request.url.query.decode(),
            {k.lower(): v for k, v in request.headers.items()},
            request.read(),
        )
        return httpx.Response(answer.status, json=answer.body, headers=dict(answer.headers))

    return httpx.MockTransport(handle)
