"""Small helpers every benchmark module shares: paths, timing, percentiles, run metadata."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from permstore.adapters.settings import LOCAL_DIR

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LOGS = LOCAL_DIR / "logs" / "bench"

JsonDict = dict[str, Any]


def say(message: str) -> None:
    """Progress line on stderr (results go to files)."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def utc_now() -> str:
    """RFC 3339 UTC time of now, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def rfc3339_ms(epoch_ms: int) -> str:
    """RFC 3339 UTC text of an epoch-millisecond time (millisecond precision)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(seconds: Sequence[float]) -> JsonDict:
    """p50/p95/p99/max/mean in milliseconds of latencies given in seconds."""
    ms = sorted(s * 1000.0 for s in seconds)
    if not ms:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {
        "count": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(ms[-1], 3),
        "mean": round(sum(ms) / len(ms), 3),
    }


def git_commit() -> str:
    """Commit of the work tree (with a +dirty mark), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def host_info() -> JsonDict:
    """What the numbers were measured on."""
    import psutil

    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(load[0], 2),
    }


@dataclass(frozen=True)
class Deadline:
    """A monotonic deadline that every bounded loop checks."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline seconds from now."""
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        """True once the deadline is reached."""
        return time.monotonic() >= self.at
