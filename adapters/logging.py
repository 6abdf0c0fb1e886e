"""Structured JSON logs on stderr for every process."""

from __future__ import annotations

import logging
import sys

import structlog
from asgi_correlation_id.context import correlation_id
from structlog.typing import EventDict, WrappedLogger

from permstore.adapters.settings import LoggingSettings


def add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Tag a log line with the HTTP request it belongs to, when there is one."""
    request_id = correlation_id.get()
    if request_id:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(level: str | None = None) -> None:
    """Send structlog and stdlib logs as JSON lines to stderr."""
    chosen = (level or LoggingSettings().log_level or "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=chosen, format="%(message)s")
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(chosen)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
