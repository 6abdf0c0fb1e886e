"""/readyz tells a busy processor (lag, but fresh progress stamps) from a stalled one."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from permstore.adapters.settings import Settings
from permstore.core.consistency import PROGRESS_KEY, LogPoint
from permstore.services.api.deps import Services
from permstore.services.api.main import PROGRESS_STALL_SECONDS, Readiness


class StampReader:
    """Answers freshness of the progress row only, with a fixed stamp (epoch us or None)."""

    def __init__(self, stamp: int | None) -> None:
        self.stamp = stamp

    async def freshness(self, tenant: str) -> tuple[LogPoint, int | None]:
        assert tenant == PROGRESS_KEY
        return LogPoint(0, -1), self.stamp


class FakeServices:
    def __init__(self, stamp: int | None) -> None:
        self.settings = Settings(readiness_max_lag=100)
        self.reader = StampReader(stamp)


def judge(total: int, stamp_age: float | None) -> tuple[bool, dict[str, Any]]:
    stamp = None if stamp_age is None else int((time.time() - stamp_age) * 1_000_000)
    readiness = Readiness(cast(Services, FakeServices(stamp)), None)
    checks: dict[str, Any] = {}
    ok = asyncio.run(readiness._judge_lag(total, checks))
    return ok, checks


def test_lag_over_bound_with_fresh_progress_is_a_busy_processor() -> None:
    ok, checks = judge(5000, 1.0)
    assert ok and "progressing" in checks["lag_status"]


def test_lag_without_progress_is_a_stalled_processor() -> None:
    ok, checks = judge(3, PROGRESS_STALL_SECONDS + 5)
    assert not ok and "stalled" in checks["lag_status"]


def test_without_any_stamp_the_lag_bound_decides() -> None:
    assert judge(50, None)[0]
    ok, checks = judge(500, None)
    assert not ok and checks["lag_status"] == "over bound 100"
