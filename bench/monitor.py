"""Server-side resource use during a measurement: CPU of each process and peak RSS."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from bench.common import JsonDict

SAMPLE_SECONDS = 0.25


def peak_rss_lifetime_mb(pid: int) -> float | None:
    """The kernel's high-water mark of a process's resident memory (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def listening_pid(port: int) -> int | None:
    """The pid listening on a local TCP port (best effort; Kafka and Cassandra)."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid else None
    except (psutil.Error, OSError):
        return None
    return None


@dataclass
class _Tracked:
    label: str
    process: Any
    cpu_start: float = 0.0
    peak_rss: int = 0
    alive: bool = True


@dataclass
class ResourceMonitor:
    """Samples the given processes in a thread between __enter__ and __exit__.

    `processes` maps a label (api-1, processor, cassandra, ...) to a pid. The result reports
    CPU seconds and percent of one core over the window, and peak RSS seen while sampling
    plus the process's lifetime high-water mark.
    """

    processes: dict[str, int]
    result: JsonDict = field(default_factory=dict)
    _tracked: list[_Tracked] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _sys_start: Any = None

    def __enter__(self) -> ResourceMonitor:
        self._tracked = []
        for label, pid in self.processes.items():
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                item = _Tracked(label, proc, times.user + times.system)
                item.peak_rss = proc.memory_info().rss
                self._tracked.append(item)
            except psutil.Error:
                continue
        self._sys_start = psutil.cpu_times()
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for item in self._tracked:
                if not item.alive:
                    continue
                try:
                    item.peak_rss = max(item.peak_rss, item.process.memory_info().rss)
                except psutil.Error:
                    item.alive = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        wall = max(1e-9, time.monotonic() - self._started)
        per_process: dict[str, JsonDict] = {}
        for item in self._tracked:
            entry: JsonDict = {"pid": item.process.pid}
            try:
                times = item.process.cpu_times()
                cpu = times.user + times.system - item.cpu_start
                entry["cpu_seconds"] = round(cpu, 2)
                entry["cpu_percent"] = round(100 * cpu / wall, 1)
            except psutil.Error:
                entry["cpu_seconds"] = entry["cpu_percent"] = None
            entry["peak_rss_mb"] = round(item.peak_rss / 2**20, 1)
            entry["lifetime_peak_rss_mb"] = peak_rss_lifetime_mb(item.process.pid)
            per_process[item.label] = entry
        end = psutil.cpu_times()
        busy = sum(
            getattr(end, f) - getattr(self._sys_start, f)
            for f in ("user", "system", "nice", "irq", "softirq", "steal")
            if hasattr(end, f)
        )
        total = (
            busy
            + (end.idle - self._sys_start.idle)
            + getattr(end, "iowait", 0.0)
            - getattr(self._sys_start, "iowait", 0.0)
        )
        cores = psutil.cpu_count() or 1
        machine = 100 * cores * busy / total if total > 0 else None
        ours = sum(p.get("cpu_percent") or 0.0 for p in per_process.values())
        self.result = {
            "wall_seconds": round(wall, 2),
            # Percent of one core, like the per-process figures (200 = both cores of 2 busy).
            "machine_cpu_percent": round(machine, 1) if machine is not None else None,
            "unwatched_cpu_percent": round(machine - ours, 1) if machine is not None else None,
            "processes": per_process,
        }
