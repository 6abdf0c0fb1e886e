"""ASGI middleware: body size limit, security headers, per-subject rate limits, metrics."""

from __future__ import annotations

import time
from typing import Any

import orjson
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from permstore.services.api.errors import error_body

MAX_BODY_BYTES = 4 * 1024 * 1024

REQUESTS = Counter("permstore_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "permstore_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DECISIONS = Counter("permstore_check_decisions_total", "Check decisions", ["allowed"])

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# The console's pages load only their own stylesheet: no inline script or style anywhere.
CONSOLE_CSP = (
    b"content-security-policy",
    b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    b"base-uri 'none'; frame-ancestors 'none'",
)


async def _send_error(send: Send, status: int, code: str, message: str, headers: list[Any]) -> None:
    body = orjson.dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for bodies over 4 MiB, whether or not Content-Length tells the truth."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, 413, "too_large", "request body over 4 MiB", [])
                return
        received = 0
        started = False
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large:
                # The app may have caught the error while reading the body (FastAPI turns it
                # into a 400); whatever it answers, the answer is 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 413, "too_large", "request body over 4 MiB", [])
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLargeError:
            if not started:
                await _send_error(send, 413, "too_large", "request body over 4 MiB", [])


class _TooLargeError(Exception):
    pass


class SecurityHeadersMiddleware:
    """Headers that make responses inert in browsers and uncached by proxies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(("/docs", "/redoc"))
        is_console = scope["path"].startswith("/console")

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if is_console:
                    headers.append(CONSOLE_CSP)
                elif not is_docs:
                    headers.append(API_CSP)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)


class MetricsMiddleware:
    """Request counts and latency by route template (bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        root = scope.get("root_path", "")

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            mounted = scope.get("root_path", "")
            if route is not None:
                template = getattr(route, "path", "unmatched")
            elif mounted != root:
                # A mounted app (the console's static files) names no route; its prefix does.
                template = f"{mounted[len(root) :]}/{{path}}"
            else:
                template = "unmatched"
            LATENCY.labels(template).observe(time.perf_counter() - started)
            REQUESTS.labels(template, scope["method"], str(status)).inc()


class RateLimiter:
    """Per-subject fixed-window limit (cheap per call); callers answer 429 past it."""

    def __init__(self, per_second: int) -> None:
        self._item = RateLimitItemPerSecond(per_second)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def allow(self, subject: str) -> bool:
        """Count one call of subject; False once over the limit."""
        return bool(await self._limiter.hit(self._item, subject))
