"""Usage recording: check throughput with recording on vs off (A/B, one sitting), and its delay.

One tenant (300 users in 30 groups nested two deep, folder wildcards to groups through roles,
direct grants); two API processes of one worker each, one with PERMSTORE_USAGE_ENABLED=false,
loaded in alternation (on, off, on, off, ...) with the same closed-loop Python load, singles
and batches of 100. The delay is the time from a check's answer until the per-principal usage
endpoint shows it (flush interval + Kafka + the processor's fold).

    .venv/bin/python -m bench.usage_ab [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson

from bench import events as ev
from bench.common import JsonDict, say, utc_now
from bench.loadgen import LoadSpec, run_load
from bench.stack import Api, Namespace, Processor, issue_token

TENANT = "usage"
RESULTS = Path(__file__).resolve().parent / "results" / "usage_ab.json"
ACTIONS = ["read", "write", "comment", "list"]


def dataset() -> list[JsonDict]:
    """Roles, a two-level group tree, wildcard grants to groups and direct grants."""
    out = [
        ev.define_role(TENANT, "viewer", ["read", "list"]),
        ev.define_role(TENANT, "editor", ["read", "write", "comment"]),
    ]
    out += [ev.add_member(TENANT, f"group:top-{i % 5}", f"group:team-{i}") for i in range(30)]
    out += [ev.add_member(TENANT, f"group:team-{u % 30}", f"user:u{u}") for u in range(300)]
    out += [
        ev.grant(TENANT, f"group:team-{i}", f"doc:f{i % 10}/*", "role:viewer") for i in range(30)
    ]
    out += [ev.grant(TENANT, f"group:top-{i}", f"doc:f{i}/*", "role:editor") for i in range(5)]
    out += [ev.grant(TENANT, f"user:u{u}", f"doc:f{u % 10}/d{u % 7}", "write") for u in range(300)]
    return out


def bodies(rng: random.Random, batch: int) -> list[bytes]:
    """Request bodies: singles (batch 0) or batches of `batch` random checks."""

    def one() -> JsonDict:
        return {
            "principal": f"user:u{rng.randrange(300)}",
            "resource": f"doc:f{rng.randrange(10)}/d{rng.randrange(7)}",
            "action": rng.choice(ACTIONS),
        }

    if batch == 0:
        return [orjson.dumps({"tenant": TENANT, **one()}) for _ in range(2000)]
    return [
        orjson.dumps({"tenant": TENANT, "checks": [one() for _ in range(batch)]})
        for _ in range(200)
    ]


def sync(url: str, token: str, at_least: str) -> None:
    """Wait until the views include at_least."""
    body = {"tenant": TENANT, "principal": "user:x", "resource": "doc:x", "action": "noop"}
    body["consistency"] = {"at_least": at_least}  # type: ignore[assignment]
    for _ in range(120):
        if httpx.post(f"{url}/v1/check", json=body, headers=auth(token), timeout=30).is_success:
            return
    raise RuntimeError("views did not catch up")


def served(api: Api) -> tuple[float, float]:
    """(CPU seconds of the API process, decisions it has answered) right now."""
    import psutil

    times = psutil.Process(api.pid).cpu_times()
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    decisions = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("permstore_check_decisions_total{")
    )
    return times.user + times.system, decisions


def auth(token: str) -> dict[str, str]:
    """Bearer header."""
    return {"Authorization": f"Bearer {token}"}


def measure_delay(url: str, token: str, tries: int) -> list[float]:
    """Seconds from a check's answer to its use in GET /principals/{p}/usage."""
    delays = []
    for i in range(tries):
        principal = f"user:delay{i}-{int(time.time())}"
        event = ev.grant(TENANT, principal, "doc:delay", "read")
        accepted = httpx.post(
            f"{url}/v1/events", json={"events": [event]}, headers=auth(token), timeout=30
        ).json()
        sync(url, token, accepted["token"])
        check = {"tenant": TENANT, "principal": principal, "resource": "doc:delay"}
        httpx.post(f"{url}/v1/check", json={**check, "action": "read"}, headers=auth(token))
        answered = time.monotonic()
        path = f"{url}/v1/tenants/{TENANT}/principals/{quote(principal, safe='')}/usage"
        while True:
            items = httpx.get(path, headers=auth(token), timeout=30).json()["permissions"]
            if items and items[0]["uses"] > 0:
                delays.append(time.monotonic() - answered)
                break
            if time.monotonic() - answered > 120:
                raise RuntimeError("usage never became visible")
            time.sleep(0.05)
    return delays


def main() -> None:
    """Run the A/B and the delay; print figures and save JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--micro-only", action="store_true", help="Only the in-process cost.")
    args = parser.parse_args()
    micro = recorder_cpu()
    if args.micro_only:
        return
    ns = Namespace.create("usage")
    ns.bootstrap()
    processor = Processor(ns, "processor")
    on = Api(ns, 1, name="api-usage-on")
    off_ns = dataclasses.replace(ns, env={**ns.env, "PERMSTORE_USAGE_ENABLED": "false"})
    off = Api(off_ns, 1, name="api-usage-off")
    token = issue_token()
    results: JsonDict = {"started": utc_now(), "rounds": args.rounds, "seconds": args.seconds}
    results["recorder_cpu"] = micro
    try:
        processor.start()
        on.start()
        off.start()
        on.wait_ready()
        off.wait_ready()
        history = dataset()
        last = ""
        for start in range(0, len(history), 500):
            chunk = history[start : start + 500]
            answer = httpx.post(
                f"{on.url}/v1/events", json={"events": chunk}, headers=auth(token), timeout=30
            )
            last = answer.json()["token"]
        sync(on.url, token, last)
        rng = random.Random(7)
        series: dict[str, dict[str, list[float]]] = {}
        cpu_series: dict[str, dict[str, list[float]]] = {}
        for kind, path, batch in (("single", "/v1/check", 0), ("batch100", "/v1/check/batch", 100)):
            payloads = bodies(rng, batch)
            for round_no in range(args.rounds):
                for label, api in (("on", on), ("off", off)):
                    spec = LoadSpec(
                        url=api.url,
                        path=path,
                        bodies=payloads,
                        token=token,
                        mode="closed",
                        concurrency=8,
                        duration=args.seconds,
                        warmup=2.0,
                        decisions_per_request=max(1, batch),
                        label=f"{kind}-{label}-{round_no}",
                    )
                    cpu_before, done_before = served(api)
                    summary = run_load(spec, 1).summary()
                    cpu_after, done_after = served(api)
                    rate = float(summary["decisions_per_s"])
                    cpu_us = 1e6 * (cpu_after - cpu_before) / max(1.0, done_after - done_before)
                    series.setdefault(kind, {}).setdefault(label, []).append(rate)
                    cpu_series.setdefault(kind, {}).setdefault(label, []).append(cpu_us)
                    say(
                        f"{kind} usage {label} round {round_no}: {rate:,.0f} decisions/s, "
                        f"API CPU {cpu_us:.1f} µs per decision"
                    )
        for kind, runs in series.items():
            mean_on, mean_off = statistics.mean(runs["on"]), statistics.mean(runs["off"])
            results[kind] = {
                "on": runs["on"],
                "off": runs["off"],
                "mean_on": round(mean_on, 1),
                "mean_off": round(mean_off, 1),
                "cost_percent": round(100 * (1 - mean_on / mean_off), 2),
                "api_cpu_us_per_decision_on": [round(x, 1) for x in cpu_series[kind]["on"]],
                "api_cpu_us_per_decision_off": [round(x, 1) for x in cpu_series[kind]["off"]],
                "cpu_cost_percent": round(
                    100
                    * (
                        statistics.median(cpu_series[kind]["on"])
                        / statistics.median(cpu_series[kind]["off"])
                        - 1
                    ),
                    2,
                ),
            }
            say(
                f"{kind}: on {mean_on:,.0f}/s, off {mean_off:,.0f}/s, cost "
                f"{results[kind]['cost_percent']} %; API CPU per decision cost "
                f"{results[kind]['cpu_cost_percent']} % (medians)"
            )
        delays = measure_delay(on.url, token, 5)
        results["delay_seconds"] = {
            "samples": [round(d, 2) for d in delays],
            "median": round(statistics.median(delays), 2),
            "max": round(max(delays), 2),
        }
        say(f"usage delay: median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")
    finally:
        for process in (on, off, processor):
            process.stop()
        ns.drop()
    results["finished"] = utc_now()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    say(f"saved {RESULTS}")


def recorder_cpu(decisions: int = 200_000) -> JsonDict:
    """CPU µs per decision of the hot-path append plus the drain that expands it, in process
    (process_time, so other load on the machine inflates it less than wall-clock throughput)."""
    from permstore.adapters.settings import Settings
    from permstore.core.decisions import Reason
    from permstore.services.api.usage import UsageRecorder

    @dataclasses.dataclass(frozen=True)
    class Item:
        principal: str
        action: str

    recorder = UsageRecorder(Settings(usage_max_entries=1_000_000))
    rng = random.Random(3)
    shapes = []
    for u in range(300):
        principal = f"user:u{u}"
        group = Reason(
            principal,
            f"group:team-{u % 30}",
            f"doc:f{u % 10}/*",
            "role:viewer",
            0,
            (f"group:team-{u % 30}",),
        )
        direct = Reason(principal, principal, f"doc:f{u % 10}/d{u % 7}", "write", 0)
        shapes.append((Item(principal, "read"), [group]))
        shapes.append((Item(principal, "write"), [direct]))
        shapes.append((Item(principal, "delete"), []))
    out: JsonDict = {}
    for label, per_request in (("single", 1), ("batch100", 100)):
        requests = [
            [rng.choice(shapes) for _ in range(per_request)]
            for _ in range(decisions // per_request)
        ]
        started = time.process_time()
        for request in requests:
            recorder.record(TENANT, [c for c, _ in request], [r for _, r in request])
            if recorder._pending_decisions >= 20_000:
                recorder.drain()
        recorder.drain()
        recorder.expand()
        spent = time.process_time() - started
        out[label] = {"cpu_us_per_decision": round(spent / decisions * 1e6, 2)}
        say(f"recorder {label}: {out[label]['cpu_us_per_decision']} µs CPU per decision")
    return out


if __name__ == "__main__":
    main()
