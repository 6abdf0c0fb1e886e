"""The processor's faust worker leaves library debug lines unbuilt."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from permstore.streams.main import quiet_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_the_worker_keeps_the_root_logger_at_its_level(root_logger: logging.Logger) -> None:
    """faust's spinner would lower the root logger to DEBUG, so every aiokafka debug line
    would be built and filtered per event; the processor's worker has no spinner."""
    app = faust.App("test-quiet-worker", broker="kafka://127.0.0.1:1", autodiscover=False)
    worker = quiet_worker(app)
    root_logger.setLevel(logging.WARNING)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.WARNING
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
