"""The FastAPI application: the one place that wires the read side's adapters."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from asgi_correlation_id import CorrelationIdMiddleware
from cassandra.cluster import Session
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout.catalogue import active_generation, read_active_generation
from permstore.adapters.cassandra_layout.changes_reader import ChangeStore
from permstore.adapters.cassandra_layout.reader import ViewReader
from permstore.adapters.cassandra_layout.usage_reader import UsageStore
from permstore.adapters.kafka_lag import LagProbe
from permstore.adapters.kafka_security import client_options
from permstore.adapters.logging import configure_logging
from permstore.adapters.settings import Settings
from permstore.adapters.view_updates import TouchFollower
from permstore.core.consistency import PROGRESS_KEY
from permstore.services.api.changes_routes import router as changes_router
from permstore.services.api.deps import Services
from permstore.services.api.errors import install_error_handlers
from permstore.services.api.fast_lane import CheckFastLane
from permstore.services.api.findings_routes import router as findings_router
from permstore.services.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    RateLimiter,
    SecurityHeadersMiddleware,
)
from permstore.services.api.publisher import EventPublisher
from permstore.services.api.routes import router
from permstore.services.api.usage import UsageRecorder
from permstore.services.auth_settings import AuthSettings, build_authenticator
from permstore.services.console.routes import install_console

log = structlog.get_logger("permstore.api")

DESCRIPTION = """
permstore answers "may this principal do this action on this resource?" from views that a
stream processor keeps up to date from the Kafka event log. Every call but `/healthz`,
`/readyz` and `/metrics` needs `Authorization: Bearer <token>`; see contract section 5.
"""


PROGRESS_STALL_SECONDS = 30.0
"""Lag with no processor progress stamp for this long means the processor is stalled."""


class Readiness:
    """Cached answer of /readyz: store reachable, Kafka reachable, lag under its bound."""

    def __init__(self, services: Services, probe: LagProbe | None) -> None:
        self._services = services
        self._probe = probe
        self._cached: tuple[float, int, dict[str, Any]] | None = None

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(status code, body), refreshed at most once a second."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < 1.0:
            return self._cached[1], self._cached[2]
        checks: dict[str, Any] = {}
        ok = True
        try:
            await asyncio.wait_for(self._services.reader.ping(), 2.0)
            checks["cassandra"] = "ok"
        except Exception as exc:
            ok, checks["cassandra"] = False, f"unreachable ({type(exc).__name__})"
        if self._probe is not None:
            try:
                group = self._services.settings.group_for(self._services.reader.generation)
                lag = await asyncio.wait_for(self._probe.lag(group), 3.0)
                total = sum(lag.values())
                checks["kafka"] = "ok"
                checks["lag"] = total
                if total > 0:
                    ok = await self._judge_lag(total, checks) and ok
            except Exception as exc:
                ok, checks["kafka"] = False, f"unreachable ({type(exc).__name__})"
        touches = self._services.touches
        if touches is not None:
            # Informational: without the touch stream checks read Cassandra, still exact.
            checks["view_cache"] = (
                "following" if touches.following else "not following (checks read Cassandra)"
            )
        body: dict[str, Any] = {
            "status": "ready" if ok else "not_ready",
            "checks": checks,
            "generation": self._services.reader.generation,
        }
        status = 200 if ok else 503
        self._cached = (now, status, body)
        return status, body

    async def _judge_lag(self, total: int, checks: dict[str, Any]) -> bool:
        """Lag with a fresh progress stamp is a busy processor (one heavy tenant holds its
        partition's committed offset back while others go on); without one it is stalled."""
        bound = self._services.settings.readiness_max_lag
        try:
            reading = self._services.reader.freshness(PROGRESS_KEY)
            _, stamped = await asyncio.wait_for(reading, 2.0)
        except Exception:
            stamped = None  # judged by the lag bound alone, as without a stamp
        if stamped is not None:
            age = max(0.0, time.time() - stamped / 1_000_000)
            checks["processor_progress_age_seconds"] = round(age, 1)
            if age > PROGRESS_STALL_SECONDS:
                checks["lag_status"] = f"processor stalled: no progress for {age:.0f}s"
                return False
            if total > bound:
                checks["lag_status"] = f"over bound {bound}, processor progressing"
            return True
        if total > bound:
            checks["lag_status"] = f"over bound {bound}"
            return False
        return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to Cassandra (read-only role) and Kafka; close them on shutdown."""
    configure_logging()
    settings = Settings()
    cluster, session = await asyncio.to_thread(connect, settings, "api", request_timeout=2.0)
    generation = settings.generation or active_generation(session, settings.cassandra_keyspace) or 1

    def make_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=10_000,
            **client_options(settings, "api"),
        )

    publisher = EventPublisher(make_producer)
    await publisher.start()
    probe = LagProbe(settings, "api")
    await probe.start()
    services = Services(
        settings=settings,
        reader=ViewReader(
            session, settings.cassandra_keyspace, generation, settings.view_cache_rows
        ),
        publisher=publisher,
        authenticator=build_authenticator(AuthSettings()),
        rate_limiter=RateLimiter(settings.rate_limit_per_second),
        usage=UsageRecorder(settings),
    )
    if settings.view_cache_rows:
        services.touches = TouchFollower(
            settings, lambda: (services.reader.generation, services.reader.cache)
        )
    app.state.services = services
    app.state.usage_store = UsageStore(session, settings.cassandra_keyspace)
    app.state.change_store = ChangeStore(session, settings.cassandra_keyspace)
    app.state.readiness = Readiness(services, probe)
    log.info("api.start", generation=generation, pid=os.getpid())
    # Modules, models and clients live as long as the process: leaving them out of the cycle
    # collector's full passes keeps those pauses, a check's worst latency, short.
    gc.freeze()
    watcher = asyncio.create_task(follow_active_generation(services, session))
    following = asyncio.create_task(services.touches.run()) if services.touches else None
    assert services.usage is not None
    await services.usage.start()
    try:
        yield
    finally:
        watcher.cancel()
        if following is not None:
            following.cancel()
        await services.usage.stop()
        await probe.close()
        await publisher.stop()
        await asyncio.to_thread(cluster.shutdown)


async def follow_active_generation(services: Services, session: Session) -> None:
    """Switch reads to a newly activated generation; requests in flight finish on the old one."""
    keyspace = services.settings.cassandra_keyspace
    while True:
        await asyncio.sleep(services.settings.generation_poll_seconds)
        try:
            active = await read_active_generation(session, keyspace)
        except Exception as exc:
            log.warning("generation.poll_failed", error=type(exc).__name__)
            continue
        if active is not None and active != services.reader.generation:
            reader = await asyncio.to_thread(
                ViewReader, session, keyspace, active, services.settings.view_cache_rows
            )
            log.info("generation.switched", old=services.reader.generation, new=active)
            services.reader = reader


def request_ids() -> Callable[[], str]:
    """Unique request ids without a getrandom call per request (uuid4 cost ~8% of a check).

    A random 64-bit prefix per process and a counter, shaped as a version 4 UUID.
    """
    prefix = secrets.randbits(64) << 64
    counter = itertools.count()

    def next_id() -> str:
        return str(uuid.UUID(int=prefix | (next(counter) & 0xFFFF_FFFF_FFFF_FFFF), version=4))

    return next_id


def create_app() -> FastAPI:
    """Build the API application."""
    app = FastAPI(
        title="permstore",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(findings_router)
    app.include_router(changes_router)
    # The web console (/console): its own package, sharing this app's services and headers.
    install_console(app)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness",
        responses={
            200: {
                "description": "The process is up; says nothing about Cassandra or Kafka.",
                "content": {"application/json": {"example": {"status": "ok"}}},
            }
        },
    )
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness",
        responses={
            200: {
                "description": "Every dependency answers and the lag is within its bound.",
                "content": {
                    "application/json": {
                        "example": {
                            "status": "ready",
                            "checks": {
                                "cassandra": "ok",
                                "kafka": "ok",
                                "lag": 3,
                                "view_cache": "following",
                            },
                            "generation": 1,
                        }
                    }
                },
            },
            503: {
                "description": "A dependency is unreachable or the lag is over its bound; "
                "the checks say which.",
                "content": {
                    "application/json": {
                        "example": {
                            "status": "not_ready",
                            "checks": {
                                "cassandra": "ok",
                                "kafka": "ok",
                                "lag": 48213,
                                "lag_status": "over bound 10000",
                                "view_cache": "following",
                            },
                            "generation": 1,
                        }
                    }
                },
            },
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        """Ready when Cassandra and Kafka answer and the processor's lag is under its bound."""
        status, body = await request.app.state.readiness.report()
        return JSONResponse(body, status)

    # The handler builds its own Response; the bare class keeps FastAPI from also
    # documenting an application/json body that /metrics never sends.
    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition of this worker's counters and "
                "histograms.",
                "content": {
                    "text/plain": {
                        "example": (
                            "# HELP permstore_http_requests_total HTTP requests\n"
                            "# TYPE permstore_http_requests_total counter\n"
                            'permstore_http_requests_total{method="POST",'
                            'route="/v1/check",status="200"} 1042.0\n'
                        )
                    }
                },
            }
        },
    )
    async def metrics() -> Response:
        """Prometheus exposition of this worker's metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Innermost: a fast-laned check still gets metrics, security headers, the body limit
    # and a request id from the middlewares around it.
    app.add_middleware(CheckFastLane)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID", generator=request_ids())
    return app


app = create_app()
