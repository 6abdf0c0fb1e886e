"""S3 materializer: sustained events/s of the processor, and the cost of big fan-outs.

Throughput: for each workload the processor is stopped, the events are published to the
topic, and a fresh processor catches up on the backlog; events/s is measured from its own
counters (permstore_events_applied_total, scraped every 0.2 s) between 5 % applied and done,
so process start and the consumer-group join are left out (they are reported apart).

- direct: grants of one action to a user on one document (1 view row each), 16 tenants;
- group: grants to groups of 20 members (21 view rows each), 8 tenants;
- role: grants of a 5-action role to users (5 view rows each), 8 tenants.

Fan-out figures (processor running, one event each, timed from Kafka's ack of the event to the
processor's counter showing it applied): (a) adding a member to a group that holds 10,000
grants, (b) a grant to a group of 10,000 members. Each view row written is two Cassandra cell
writes (permissions_by_principal and principals_by_pattern).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import events as ev
from bench.common import JsonDict, say
from bench.monitor import ResourceMonitor
from bench.profiling import Profile
from bench.report import Row, ScenarioReport, figure, save_figure
from bench.scenario import Options, Stack, steady_rate
from bench.stack import seconds_since_append, wait_applied, wait_lag_zero

DIRECT_FLOOR = 5000.0
GROUP_SIZE, GROUPS_PER_TENANT = 20, 10
ROLE_ACTIONS = ["read", "write", "comment", "delete", "share"]
FAN = 10_000


def direct_events(count: int, start: int = 0) -> list[JsonDict]:
    """Direct grants, 16 tenants; a later `start` gives grants on other documents."""
    return [
        ev.grant(f"d{i % 16}", f"user:u{i % 5000}", f"doc:d{i % 16}/f{i % 50}/d{i}", "read")
        for i in range(start, start + count)
    ]


def group_setup() -> list[JsonDict]:
    """8 tenants x 10 groups x 20 members, plus the 5-action role of the role workload."""
    out = [
        ev.add_member(f"m{t}", f"group:g{g}", f"user:m{g}-{k}")
        for t in range(8)
        for g in range(GROUPS_PER_TENANT)
        for k in range(GROUP_SIZE)
    ]
    out += [ev.define_role(f"r{t}", "editor5", ROLE_ACTIONS) for t in range(8)]
    return out


def group_events(count: int) -> list[JsonDict]:
    """Grants to groups of 20 members."""
    return [
        ev.grant(f"m{i % 8}", f"group:g{i % GROUPS_PER_TENANT}", f"doc:m/f{i % 50}/d{i}", "read")
        for i in range(count)
    ]


def role_events(count: int) -> list[JsonDict]:
    """Grants of a 5-action role to users."""
    return [
        ev.grant(f"r{i % 8}", f"user:u{i % 5000}", f"doc:r/f{i % 50}/d{i}", "role:editor5")
        for i in range(count)
    ]


def fan_setup() -> list[JsonDict]:
    """group:big holds 10,000 grants; group:crowd has 10,000 members (one tenant)."""
    out = [ev.grant("fan", "group:big", f"doc:fan/big/d{i}", "read") for i in range(FAN)]
    out += [ev.add_member("fan", "group:crowd", f"user:c{i}") for i in range(FAN)]
    return out


def catch_up(
    stack: Stack,
    name: str,
    events: list[JsonDict],
    timeout: float,
    profile: bool,
) -> JsonDict:
    """Stop the processor, publish the backlog, start a processor and time its catch-up."""
    stack.stop_processor()
    published = stack.publish(events)
    started = time.monotonic()
    processor = stack.start_processor()
    with ResourceMonitor(stack.server_pids()) as monitor:
        if profile:
            with Profile("processor_" + name, processor.pid, min(timeout, 30)) as prof:
                samples = stack.follow(len(events), timeout, partial=True)
        else:
            samples = stack.follow(len(events), timeout, partial=True)
    samples.insert(0, (started, 0.0, 0.0))
    result = steady_rate(samples, len(events))
    result.update(
        events=len(events),
        publish_events_per_s=round(published.rate, 1),
        wall_incl_start_s=round(samples[-1][0] - started, 2),
        server=monitor.result,
        curve=[(round(t - started, 2), a, c) for t, a, c in samples[1:]],
    )
    if profile:
        result["profile"] = prof.result
    if result["complete"]:
        wait_lag_zero(stack.namespace.settings(), 120)
    say(
        f"s3: {name}: {result['events_per_s']:,.0f} events/s, "
        f"{result['view_rows_per_s']:,.0f} view rows/s ({len(events):,} events)"
    )
    return result


def fan_out(stack: Stack, name: str, event: JsonDict) -> JsonDict:
    """Time one big fan-out event with the processor running."""
    processor = stack.processor
    assert processor is not None
    before_applied, before_rows = processor.applied()
    published = stack.publish([event], mark=[0])
    samples = wait_applied(processor, before_applied + 1, 300, poll=0.02)
    seconds = seconds_since_append(samples, published.marks[0][2])
    rows = samples[-1][2] - before_rows
    say(f"s3: fan-out {name}: {rows:,.0f} view rows in {seconds:.2f}s")
    return {"seconds": round(seconds, 3), "view_rows": rows, "cassandra_cell_writes": 2 * rows}


def run(options: Options) -> ScenarioReport:
    """Run S3 and return its report."""
    sizes = {
        "direct": options.pick(20_000, 200_000),
        "group": options.pick(2_000, 20_000),
        "role": options.pick(5_000, 50_000),
    }
    timeout = options.pick(240.0, 1200.0)
    makers: dict[str, Callable[[int], list[JsonDict]]] = {
        "direct": direct_events,
        "group": group_events,
        "role": role_events,
    }
    report = ScenarioReport(
        "s3_materializer",
        "S3 materializer: sustained events/s and fan-out",
        options.mode,
        config={
            "events": sizes,
            "catch_up_bound_s": timeout,
            "group_size": GROUP_SIZE,
            "role_actions": len(ROLE_ACTIONS),
            "fan_out": FAN,
        },
    )
    with Stack("s3", options, with_api=False) as stack:
        report.results["setup"] = stack.load(group_setup() + fan_setup(), "setup", timeout=600)
        throughput: dict[str, JsonDict] = {}
        for name, maker in makers.items():
            throughput[name] = catch_up(
                stack, name, maker(sizes[name]), timeout, options.profile and name == "direct"
            )
        report.results["throughput"] = throughput
        fan = {
            "add_member_to_group_with_10k_grants": fan_out(
                stack, "(a) add member", ev.add_member("fan", "group:big", "user:newcomer")
            ),
            "grant_to_group_of_10k_members": fan_out(
                stack, "(b) group grant", ev.grant("fan", "group:crowd", "doc:fan/x", "read")
            ),
        }
        report.results["fan_out"] = fan
        report.results["processor_restarts"] = stack.processor_restarts
    for name, data in throughput.items():
        note = f"{data['events']:,} events" + ("" if data["complete"] else ", bound reached")
        floor = ">= 5,000/s" if name == "direct" else ""
        report.rows.append(
            Row(
                f"{name} events/s",
                data["events_per_s"],
                "events/s",
                floor,
                data["events_per_s"] >= DIRECT_FLOOR if floor else None,
                note,
            )
        )
        report.rows.append(Row(f"{name} view rows/s", data["view_rows_per_s"], "rows/s"))
    a = fan["add_member_to_group_with_10k_grants"]
    b = fan["grant_to_group_of_10k_members"]
    report.rows += [
        Row(
            "(a) add member to group with 10k grants",
            a["seconds"],
            "s",
            note=f"{a['view_rows']:,.0f} view rows",
        ),
        Row(
            "(b) grant to group of 10k members",
            b["seconds"],
            "s",
            note=f"{b['view_rows']:,.0f} view rows",
        ),
    ]
    report.plots.append(plot(throughput))
    return report


def plot(throughput: dict[str, JsonDict]) -> str:
    """Events applied over time for each workload, and the steady rates."""
    fig, (left, right) = figure(2)
    for name, data in throughput.items():
        curve = data["curve"]
        left.plot([c[0] for c in curve], [c[1] for c in curve], label=name)
    left.set_xlabel("seconds since processor start")
    left.set_ylabel("events applied")
    left.set_title("Catch-up on a backlog")
    left.legend()
    names = list(throughput)
    xs = range(len(names))
    right.bar(
        [x - 0.2 for x in xs], [throughput[n]["events_per_s"] for n in names], 0.4, label="events/s"
    )
    right.bar(
        [x + 0.2 for x in xs],
        [throughput[n]["view_rows_per_s"] for n in names],
        0.4,
        label="view rows/s",
    )
    right.axhline(DIRECT_FLOOR, color="grey", linestyle="--", label="direct floor 5,000/s")
    right.set_xticks(list(xs), names)
    right.set_title("Sustained processor throughput")
    right.legend()
    return save_figure(fig, "s3_materializer")
