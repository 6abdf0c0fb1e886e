"""Pure helpers of the console pages: the weekly access plot, event summaries, filters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

WEEK = timedelta(days=7)
MAX_WEEKS = 52
MIN_WEEKS = 12


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time as the API renders it (Z or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding moment."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class WeekCount:
    """Grants held at the end of one week (or now, for the current week)."""

    week: datetime
    held: int


def grants_per_week(
    principal: str, timeline: Iterable[tuple[datetime, Mapping[str, Any]]], now: datetime
) -> list[WeekCount]:
    """Grants the principal holds directly at the end of each week, from its first event
    (or MIN_WEEKS back, whichever is earlier; MAX_WEEKS at most).

    The timeline is the principal's recorded events, oldest first; a grant counts while it
    exists and has not expired (contract section 3), judged at each week's end.
    """
    events = [(at, e) for at, e in timeline]
    if not events:
        return []
    current = week_start(now)
    # At least MIN_WEEKS bars, so a new principal's plot still reads as a timeline.
    first = min(week_start(events[0][0]), current - WEEK * (MIN_WEEKS - 1))
    weeks = []
    start = max(first, current - WEEK * (MAX_WEEKS - 1))
    held: dict[tuple[str, str], datetime | None] = {}
    index = 0
    week = first
    while week <= current:
        end = min(week + WEEK, now)
        while index < len(events) and events[index][0] <= end:
            _apply(principal, held, events[index][1])
            index += 1
        if week >= start:
            live = sum(1 for expiry in held.values() if expiry is None or expiry > end)
            weeks.append(WeekCount(week, live))
        week += WEEK
    return weeks


def _apply(principal: str, held: dict[tuple[str, str], datetime | None], event: Any) -> None:
    if event.get("principal") != principal:
        return
    key = (str(event.get("resource")), str(event.get("permission")))
    if event.get("type") == "grant":
        expiry = event.get("expires_at")
        held[key] = parse_rfc3339(expiry) if isinstance(expiry, str) else None
    elif event.get("type") == "revoke":
        held.pop(key, None)


@dataclass(frozen=True)
class Bar:
    """One bar of the plot, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Plot:
    """A bar chart laid out for a server-rendered SVG."""

    width: int
    height: int
    bars: list[Bar]
    peak: int
    ticks: list[tuple[float, str]]
    baseline: float


def bar_plot(weeks: Sequence[WeekCount], width: int = 640, height: int = 180) -> Plot:
    """Lay weeks out as bars under a y scale from 0 to the peak."""
    left, bottom, top = 36.0, 24.0, 10.0
    peak = max((w.held for w in weeks), default=0)
    scale = (height - bottom - top) / peak if peak else 0.0
    slot = (width - left) / max(len(weeks), 1)
    bar_width = min(slot * 0.8, 40.0)
    bars = []
    ticks = []
    for i, item in enumerate(weeks):
        h = item.held * scale
        label = item.week.strftime("%Y-%m-%d")
        bars.append(
            Bar(
                x=round(left + i * slot + (slot - bar_width) / 2, 1),
                y=round(height - bottom - h, 1),
                width=round(bar_width, 1),
                height=round(h, 1),
                label=label,
                value=item.held,
            )
        )
        # A date under every few bars keeps the axis readable on a phone.
        if i % max(1, len(weeks) // 6) == 0:
            ticks.append((round(left + i * slot, 1), label))
    return Plot(width, height, bars, peak, ticks, height - bottom)


def describe_event(event: Mapping[str, Any]) -> str:
    """One line saying what an event did."""
    kind = event.get("type")
    if kind in ("grant", "revoke"):
        what = f"{event.get('permission')} on {event.get('resource')}"
        whom = event.get("principal")
        text = f"grant {what} to {whom}" if kind == "grant" else f"revoke {what} from {whom}"
        if event.get("expires_at"):
            text += f" until {event['expires_at']}"
        return text
    if kind == "add_member":
        return f"add {event.get('member')} to {event.get('group')}"
    if kind == "remove_member":
        return f"remove {event.get('member')} from {event.get('group')}"
    if kind == "define_role":
        return f"define role {event.get('role')} = {', '.join(event.get('actions') or [])}"
    if kind == "delete_role":
        return f"delete role {event.get('role')}"
    return str(kind)


def matches(query: str, *fields: str | None) -> bool:
    """Case-insensitive search: every word of query appears in one of the fields."""
    haystack = " ".join(f for f in fields if f).lower()
    return all(word in haystack for word in query.lower().split())
