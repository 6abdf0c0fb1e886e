"""Entry point of the stream processor: wires settings, Cassandra, faust and metrics."""

from __future__ import annotations

import gc
import os
import signal

import faust
import mode.loop
import structlog
from prometheus_client import start_http_server

from permstore.adapters.cassandra import connect
from permstore.adapters.cassandra_layout.catalogue import active_generation, read_active_generation
from permstore.adapters.cassandra_layout.writer import ChangeSink, ViewWriter
from permstore.adapters.logging import configure_logging
from permstore.adapters.settings import Settings
from permstore.streams.app import ChangePublishing, build_app
from permstore.streams.processor import BatchProcessor, DeadLetterSink
from permstore.streams.usage_agent import register_usage_agent

log = structlog.get_logger("permstore.processor")

GENERATION_POLL_SECONDS = 5.0
CHANGE_PUBLISHING_POLL_SECONDS = 0.5


def main() -> None:
    """Run the processor in the foreground until SIGTERM or Ctrl-C.

    With PERMSTORE_GENERATION set it writes that generation (a rebuild); otherwise it follows
    the active generation and exits when another one becomes active, so its supervisor
    restarts it on the new one.
    """
    # uvloop before anything creates the loop: every record, write and ack is a callback,
    # and on uvloop a direct grant cost about 12 % less processor CPU (docs/performance.md).
    mode.loop.use("uvloop")
    configure_logging()
    settings = Settings()
    cluster, session = connect(settings, "processor", request_timeout=10.0)
    pinned = settings.generation
    active = active_generation(session, settings.cassandra_keyspace) or 1
    generation = pinned or active
    writer = ViewWriter(
        session,
        settings.cassandra_keyspace,
        generation,
        settings.processor_write_concurrency,
        settings.changes_retention_days * 86_400,
    )

    def make_processor(sink: DeadLetterSink, changes: ChangeSink) -> BatchProcessor:
        return BatchProcessor(writer, sink, settings.tenant_cache_entries, changes)

    publishing = ChangePublishing(enabled=active == generation)
    app = build_app(settings, settings.group_for(generation), make_processor, publishing)
    register_usage_agent(app, settings, session)

    async def read_active() -> int | None:
        """The generation readers use; None when unknown or the store did not answer."""
        try:
            return await read_active_generation(session, settings.cassandra_keyspace)
        except Exception as exc:
            # A timer that raises crashes the faust app; an unreachable store is not fatal.
            log.warning("generation.poll_failed", error=type(exc).__name__)
            return None

    if pinned:

        async def publish_once_active() -> None:
            """A rebuild's processor publishes changes from the moment readers switch to it."""
            if (active := await read_active()) is not None:
                publishing.enabled = active == generation

        app.timer(interval=CHANGE_PUBLISHING_POLL_SECONDS)(publish_once_active)
    else:

        async def follow_active_generation() -> None:
            """Stop (gracefully) when readers have switched to another generation."""
            active = await read_active()
            if active is not None and active != generation:
                log.info("generation.switched", old=generation, new=active)
                os.kill(os.getpid(), signal.SIGTERM)

        app.timer(interval=GENERATION_POLL_SECONDS)(follow_active_generation)
    metrics_port = settings.processor_metrics_port
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    log.info("processor.start", generation=generation, pinned=bool(pinned), port=metrics_port)
    # Modules, models and the store session live as long as the process: left out of the cycle
    # collector's full passes, those cost a third as much under load (docs/performance.md).
    gc.freeze()
    try:
        quiet_worker(app).execute_from_commandline()
    finally:
        cluster.shutdown()


def quiet_worker(app: faust.App) -> faust.Worker:
    """faust's worker for the app, logging warnings and up, without its terminal spinner."""
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    # The spinner sets the root logger to DEBUG to spin on every record, so each debug line of
    # aiokafka and faust (several per event) was built and filtered.
    worker.spinner = None
    return worker


if __name__ == "__main__":
    main()
