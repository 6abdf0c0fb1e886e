"""Entry point of the stream processor: wires settings, Cassandra, faust and metrics."""

from __future__ import annotations

import os

import faust
import structlog
from prometheus_client import start_http_server

from adapters.cassandra import active_generation, connect
from adapters.logging import configure_logging
from adapters.settings import Settings
from streams.app import build_app
from streams.processor import BatchProcessor, DeadLetterSink
from streams.view_writer import ViewWriter

log = structlog.get_logger("permstore.processor")


def main() -> None:
    """Run the processor in the foreground until SIGTERM or Ctrl-C."""
    configure_logging()
    settings = Settings()
    cluster, session = connect(settings, "processor", request_timeout=10.0)
    generation = int(
        os.environ.get("PERMSTORE_GENERATION")
        or active_generation(session, settings.cassandra_keyspace)
        or 1
    )
    writer = ViewWriter(
        session, settings.cassandra_keyspace, generation, settings.processor_write_concurrency
    )

    def make_processor(sink: DeadLetterSink) -> BatchProcessor:
        return BatchProcessor(writer, sink, settings.tenant_cache_entries)

    app = build_app(settings, make_processor)
    metrics_port = int(os.environ.get("PERMSTORE_PROCESSOR_METRICS_PORT", "9108"))
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    log.info("processor.start", generation=generation, metrics_port=metrics_port)
    try:
        faust.Worker(app, loglevel="WARNING").execute_from_commandline()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
