"""Optional sampling profiles of a running process with py-spy (`pip install py-spy`).

`--profile` records one API worker during the single-check load of S1 and the processor
during the direct-grant catch-up of S3, and reports the functions where samples fall (self)
and the functions on the stack (inclusive). Only the thread holding the GIL is sampled
(`--gil`): Python CPU time, not threads idling in native code (event loops, the Cassandra
driver's libev thread). Without py-spy the step is skipped with a note.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType

from bench.common import RESULTS, JsonDict, say


def py_spy() -> str | None:
    """Path of the py-spy binary (next to this Python first), or None."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


class Profile:
    """Context manager: py-spy record of one pid for at most `seconds`, summarised on exit."""

    def __init__(self, name: str, pid: int, seconds: float, rate: int = 200) -> None:
        self.name = name
        self.pid = pid
        self.seconds = seconds
        self.rate = rate
        self.raw = RESULTS / f"profile_{name}.folded"
        self.result: JsonDict = {}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        binary = py_spy()
        if binary is None:
            self.result = {"skipped": "py-spy is not installed (pip install py-spy)"}
            say(f"profile {self.name}: skipped, py-spy not installed")
            return self
        RESULTS.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--duration",
                str(max(1, int(self.seconds))),
                "--format",
                "raw",
                "--nonblocking",
                "--gil",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        try:
            _, err = self._process.communicate(timeout=self.seconds + 60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        if not self.raw.exists():
            self.result = {"skipped": f"py-spy failed: {err.decode(errors='replace')[-300:]}"}
            return
        self.result = summarise_folded(self.raw.read_text())
        self.result["pid"] = self.pid
        say(f"profile {self.name}: {self.result['samples']} samples")


def _frame_name(frame: str) -> str:
    """'function (path/to/module.py:123)' -> 'function (module path:line-less)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise_folded(text: str, top: int = 25) -> JsonDict:
    """Top self and inclusive frames of py-spy's folded stacks ('a;b;c count' lines)."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        leaf_path = frames[-1].rsplit("(", 1)[-1].rstrip(")")
        modules[leaf_path.split("/")[0]] += count

    def ranked(counter: Counter[str]) -> list[JsonDict]:
        return [
            {"frame": frame, "percent": round(100 * n / max(1, total), 1)}
            for frame, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "self": ranked(self_counts),
        "inclusive": ranked(inclusive),
        "self_by_package": ranked(modules),
    }
