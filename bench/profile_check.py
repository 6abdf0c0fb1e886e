"""Where a check's CPU goes: the API app in this process, under cProfile, no HTTP server.

`python -m bench.profile_check [--checks N] [--batch]` loads the S1 tenant into a namespace of
its own (processor as a subprocess), runs the FastAPI app in-process through httpx's ASGI
transport (lifespan included, so the same middleware, auth, rate limiter and Cassandra reader),
sends N checks with a small concurrency, and reports CPU per check and the functions where it
goes (tottime and cumulative, and tottime by package). Uvicorn's HTTP parsing is not included;
the httpx client side of the ASGI transport is (httpx/, anyio/, and the importlib lookups that
httpx's `import trio` probe makes on every request), so read the app's share from the
fastapi/starlette/services/adapters/cassandra rows. cProfile counts each resumption of a
coroutine as a call. Results: bench/results/profile_check.json and .txt.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import time
from typing import Any

import httpx

from bench.common import RESULTS, JsonDict, say, utc_now
from bench.scenario import Options, Stack
from bench.scenarios.s1_checks import batch_bodies, dataset, single_bodies

CONCURRENCY = 4


def top_functions(stats: pstats.Stats, key: str, limit: int = 30) -> list[JsonDict]:
    """The heaviest functions by `key` ('tottime' or 'cumtime') as JSON rows."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0
    rows = []
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        short = path
        for marker in ("site-packages/", "python3.11/", "/work/main/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        rows.append(
            {
                "function": f"{name} ({short}:{line})",
                "calls": calls,
                "tottime_s": round(tottime, 4),
                "cumtime_s": round(cumtime, 4),
                "tottime_percent": round(100 * tottime / total, 1),
            }
        )
    if key == "package":
        packages: dict[str, float] = {}
        for row in rows:
            where = row["function"].rsplit("(", 1)[-1]
            if where.startswith("~"):
                package = "built-ins (epoll wait and socket reads are waiting time)"
            else:
                package = where.split("/")[0].split(":")[0] if "/" in where else where.split(".")[0]
            packages[package] = packages.get(package, 0.0) + row["tottime_s"]
        return [
            {"package": name, "tottime_percent": round(100 * value / total, 1)}
            for name, value in sorted(packages.items(), key=lambda item: -item[1])[:limit]
        ]
    index = "tottime_s" if key == "tottime" else "cumtime_s"
    rows.sort(key=lambda r: r[index], reverse=True)
    return rows[:limit]


async def send_all(
    env: dict[str, str],
    bodies: list[bytes],
    path: str,
    token: str,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, float]:
    """Run the app in-process with the namespace's settings and send `bodies` after a warm-up
    (imports, prepared statements, caches), under `profiler` if given; (CPU s, wall s)."""
    os.environ.update(env)
    from permstore.services.api.main import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            for body in bodies[:200]:
                (await client.post(path, content=body)).raise_for_status()
            queue = list(bodies)

            async def worker() -> None:
                while queue:
                    (await client.post(path, content=queue.pop())).raise_for_status()

            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            if profiler is not None:
                profiler.disable()
            return time.process_time() - cpu0, time.perf_counter() - wall0


async def drive(env: dict[str, str], bodies: list[bytes], path: str, token: str) -> JsonDict:
    """Profile `bodies` requests through the app in-process."""
    profiler = cProfile.Profile()
    cpu, wall = await send_all(env, bodies, path, token, profiler)
    stats = pstats.Stats(profiler)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return {
        "requests": len(bodies),
        "concurrency": CONCURRENCY,
        "cpu_ms_per_request_profiled": round(1000 * cpu / len(bodies), 3),
        "wall_ms_per_request_profiled": round(1000 * wall / len(bodies), 3),
        "top_tottime": top_functions(stats, "tottime"),
        "top_cumtime": top_functions(stats, "cumtime"),
        "tottime_by_package": top_functions(stats, "package", 15),
        "pstats_text": text.getvalue(),
    }


async def unprofiled_cpu(env: dict[str, str], bodies: list[bytes], path: str, token: str) -> float:
    """CPU ms per request without the profiler's overhead."""
    cpu, _ = await send_all(env, bodies, path, token)
    return 1000 * cpu / len(bodies)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_check", description=__doc__)
    parser.add_argument("--checks", type=int, default=3000, help="single checks to profile")
    parser.add_argument("--batches", type=int, default=60, help="batches of 100 to profile")
    args = parser.parse_args(argv)
    rng = random.Random(11)
    singles = single_bodies(rng, args.checks)
    batches = batch_bodies(rng, args.batches)
    result: JsonDict = {"date": utc_now()}
    with Stack("pc", Options(), with_api=False) as stack:
        stack.load(dataset(random.Random(1)), "S1 dataset")
        env = dict(stack.namespace.env)
        result["single"] = asyncio.run(drive(env, singles, "/v1/check", stack.token))
        result["single"]["cpu_ms_per_request_unprofiled"] = round(
            asyncio.run(unprofiled_cpu(env, singles, "/v1/check", stack.token)), 3
        )
        result["batch100"] = asyncio.run(drive(env, batches, "/v1/check/batch", stack.token))
        result["batch100"]["cpu_ms_per_request_unprofiled"] = round(
            asyncio.run(unprofiled_cpu(env, batches, "/v1/check/batch", stack.token)), 3
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = "\n".join(
        f"== {kind}: {result[kind]['cpu_ms_per_request_unprofiled']} ms CPU per request "
        f"(unprofiled), {result[kind]['cpu_ms_per_request_profiled']} ms profiled\n"
        + result[kind].pop("pstats_text")
        for kind in ("single", "batch100")
    )
    (RESULTS / "profile_check.txt").write_text(text)
    (RESULTS / "profile_check.json").write_text(json.dumps(result, indent=2) + "\n")
    say(
        f"single check: {result['single']['cpu_ms_per_request_unprofiled']} ms CPU; "
        f"batch of 100: {result['batch100']['cpu_ms_per_request_unprofiled']} ms CPU "
        "-> bench/results/profile_check.{json,txt}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
