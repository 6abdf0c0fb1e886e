"""An in-memory permstore: the processor's pure core (permcore) behind the HTTP contract.

Events go through the same validation models, the same projector and the same decision
functions as the real service; only Kafka, Cassandra and the network are missing. Nothing
persists, every write is applied at once (so every consistency token is reached at once), and
bearer tokens are required but not verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from pydantic import TypeAdapter, ValidationError

from .._core import identifiers as ids
from .._core.changes import AFTER_EVENT, change_page, change_records
from .._core.consistency import (
    START,
    LogPoint,
    MalformedTokenError,
    decode_change_point,
    decode_token,
    encode_token,
)
from .._core.decisions import (
    Reason,
    decide_from_rows,
    decide_from_state,
    micros_to_rfc3339,
    reasons_from_sources,
    with_chains,
)
from .._core.events import EVENT_ADAPTER, Event, EventBatch, Timestamp
from .._core.projector import REMOVED, RecordedEvent, project_pieces, to_micros
from .._core.replay import fold_event
from .._core.state import NEVER, TenantState

Json = dict[str, Any]
TIME_ADAPTER: TypeAdapter[datetime] = TypeAdapter(Timestamp)
MAX_LIMIT = 1000
MAX_BODY = 4 * 1024 * 1024


class FakeError(Exception):
    """An error answer of the contract."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def body(self) -> Json:
        """The contract's error JSON."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(field_name: str, rule: str) -> FakeError:
    """422 naming the field and the rule, as the service answers."""
    return FakeError(
        422,
        "invalid_request",
        f"invalid input: {field_name}",
        [{"field": field_name, "rule": rule}],
    )


def now_micros() -> int:
    """The current time in epoch microseconds."""
    return time.time_ns() // 1000


@dataclass
class _Recorded:
    event: Event
    body: Json
    offset: int
    recorded_at: int


@dataclass
class _Tenant:
    state: TenantState = field(default_factory=TenantState)
    # principal -> (pattern, action) -> source -> expiry: the processor's view rows
    rows: dict[str, dict[tuple[str, str], dict[str, int]]] = field(default_factory=dict)
    log: list[_Recorded] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    next_offset: int = 0
    applied_at: int | None = None
    # (offset, seq, record) of the change stream, in log order
    changes: list[tuple[int, int, Json]] = field(default_factory=list)

    def point(self) -> LogPoint:
        """The point of the newest applied event (the fake has one partition)."""
        return LogPoint(0, self.next_offset - 1) if self.next_offset else START


class InMemoryPermstore:
    """The whole permstore in one process: apply events, decide, list, audit; thread-safe."""

    def __init__(self, clock: Callable[[], int] = now_micros) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.RLock()
        self._applied = threading.Condition(self._lock)
        self._clock = clock
        self._last_recorded = 0

    def _tenant(self, tenant: str) -> _Tenant:
        return self._tenants.setdefault(tenant, _Tenant())

    def token(self, tenant: str) -> str:
        """The consistency token of the tenant's newest applied event."""
        with self._lock:
            return encode_token(tenant, LogPoint(0, self._tenant(tenant).next_offset - 1))

    def reset(self) -> None:
        """Forget every tenant."""
        with self._lock:
            self._tenants.clear()

    # writes

    def apply(self, events: Iterable[Event | Mapping[str, Any]]) -> str:
        """Append validated events (one tenant) to the log and project them; returns the token."""
        parsed = [
            e if not isinstance(e, Mapping) else EVENT_ADAPTER.validate_python(e) for e in events
        ]
        if not parsed:
            raise ValueError("no events")
        tenant = parsed[0].tenant
        if any(e.tenant != tenant for e in parsed):
            raise invalid("events", "every event of a batch names the same tenant")
        with self._lock:
            view = self._tenant(tenant)
            recorded = []
            for event in parsed:
                # LogAppendTime never goes backwards within a tenant
                self._last_recorded = max(self._last_recorded, self._clock())
                recorded.append(RecordedEvent(event, view.next_offset, self._last_recorded))
                view.next_offset += 1
            # One piece: nothing here is written between pieces.
            (result,) = project_pieces(
                view.state, recorded, view.event_ids, 2**62, track_changes=True
            )
            for item in result.applied:
                view.event_ids.add(item.event.event_id)
                body = EVENT_ADAPTER.dump_python(item.event, mode="json", exclude_none=True)
                view.log.append(_Recorded(item.event, body, item.offset, item.recorded_at))
                view.applied_at = item.recorded_at
            for effects in result.effects:
                for change in effects.views:
                    cells = view.rows.setdefault(change.principal, {})
                    sources = cells.setdefault((change.pattern, change.action), {})
                    if change.expires == REMOVED:
                        sources.pop(change.source, None)
                        if not sources:
                            del cells[(change.pattern, change.action)]
                    else:
                        sources[change.source] = change.expires
            for event_changes in result.changes:
                for seq, record in change_records(tenant, 0, event_changes):
                    view.changes.append((event_changes.offset, seq, record))
            self._applied.notify_all()
            return encode_token(tenant, LogPoint(0, view.next_offset - 1))

    def changes_after(
        self, tenant: str, after: tuple[LogPoint, int | None] | None, limit: int, wait: float
    ) -> tuple[list[tuple[str, Json]], str]:
        """((cursor, record) items, next) after a position (None: the current one), waiting
        up to wait seconds for the first change, as the service's endpoint does."""
        deadline = time.monotonic() + wait
        with self._lock:
            view = self._tenant(tenant)
            start = after if after is not None else (view.point(), None)
            point, seq = start
            bound = (point.offset, AFTER_EVENT if seq is None else seq)
            while True:
                rows = [r for r in view.changes if (r[0], r[1]) > bound][: limit + 1]
                left = deadline - time.monotonic()
                if rows or left <= 0:
                    break
                self._applied.wait(left)
            return change_page(tenant, view.point(), start, rows, limit)

    # reads

    def decide(
        self, tenant: str, principal: str, resource: str, action: str, now_us: int | None = None
    ) -> list[Reason]:
        """Reasons principal may act on resource now (empty: denied), from the view rows."""
        with self._lock:
            view = self._tenant(tenant)
            now = self._clock() if now_us is None else now_us
            cells = view.rows.get(principal, {})
            rows = [
                (pattern, cells[(pattern, action)].items())
                for pattern in ids.patterns_matching(resource)
                if (pattern, action) in cells
            ]
            reasons = decide_from_rows(principal, rows, now)
            return with_chains(reasons, view.state.paths_from(principal))

    def permissions(self, tenant: str, principal: str) -> list[tuple[str, str, list[Reason]]]:
        """Every live (pattern, action) of principal with its reasons, ordered."""
        with self._lock:
            view = self._tenant(tenant)
            now = self._clock()
            via = view.state.paths_from(principal)
            found = []
            for (pattern, action), sources in sorted(view.rows.get(principal, {}).items()):
                reasons = reasons_from_sources(principal, pattern, sources.items(), now)
                if reasons:
                    found.append((pattern, action, with_chains(reasons, via)))
            return found

    def who_can(
        self, tenant: str, resource: str, action: str | None
    ) -> list[tuple[str, str, list[Reason]]]:
        """Every user and service that may act on resource, with reasons, ordered."""
        with self._lock:
            view = self._tenant(tenant)
            now = self._clock()
            patterns = ids.patterns_matching(resource)
            found = []
            for principal in sorted(view.rows):
                if not ids.is_member_principal(principal):
                    continue
                by_action: dict[str, list[Reason]] = {}
                for (pattern, row_action), sources in view.rows[principal].items():
                    if pattern in patterns and (action is None or row_action == action):
                        live = reasons_from_sources(principal, pattern, sources.items(), now)
                        if live:
                            by_action.setdefault(row_action, []).extend(live)
                via = view.state.paths_from(principal)
                for row_action in sorted(by_action):
                    found.append((principal, row_action, with_chains(by_action[row_action], via)))
            return found

    def audit(
        self, tenant: str, principal: str | None, resource: str | None, start: int, end: int
    ) -> list[_Recorded]:
        """Recorded events naming principal (grantee, group or member) or resource, in order."""
        with self._lock:
            return [
                r
                for r in self._tenant(tenant).log
                if start <= r.recorded_at <= end and _names(r.body, principal, resource)
            ]

    def decide_at(
        self, tenant: str, principal: str, resource: str, action: str, at_us: int
    ) -> list[Reason]:
        """The reasons at a past time: the log up to it folded into a fresh state."""
        with self._lock:
            state = TenantState()
            for recorded in self._tenant(tenant).log:
                if recorded.recorded_at > at_us:
                    break
                fold_event(state, recorded.event)
            return decide_from_state(state, principal, resource, action, at_us)

    def freshness(self, tenant: str) -> Json:
        """How current the tenant's view is (always fully applied)."""
        with self._lock:
            view = self._tenant(tenant)
            applied = view.applied_at
            return {
                "tenant": tenant,
                "token": encode_token(tenant, LogPoint(0, view.next_offset - 1)),
                "applied_offset": view.next_offset - 1,
                "applied_at": micros_to_rfc3339(applied) if applied else None,
                "age_seconds": (self._clock() - applied) / 1e6 if applied else None,
            }

    def require_reached(self, tenant: str, token: str) -> None:
        """400 for a token not ours; 503 for one beyond the log (it cannot be reached)."""
        try:
            wanted = decode_token(tenant, token)
        except MalformedTokenError as exc:
            raise FakeError(
                400,
                "invalid_token",
                str(exc),
                [
                    {
                        "field": "consistency.at_least",
                        "rule": "must be a token issued by this service",
                    }
                ],
            ) from exc
        with self._lock:
            reached = LogPoint(0, self._tenant(tenant).next_offset - 1)
        if not reached.covers(wanted):
            raise FakeError(
                503,
                "consistency_timeout",
                "the in-memory view never reaches a token beyond its log",
                {"reached": encode_token(tenant, reached)},
            )


def _names(body: Mapping[str, Any], principal: str | None, resource: str | None) -> bool:
    if principal is None and resource is None:
        return True
    named = {body.get("principal"), body.get("group"), body.get("member")} - {None}
    return (principal is not None and principal in named) or (
        resource is not None and body.get("resource") == resource
    )


def reason_json(reasons: list[Reason]) -> list[dict[str, object]]:
    """Reasons as the API shows them."""
    return [r.as_json() for r in reasons]


def latest_expiry(reasons: list[Reason]) -> str | None:
    """When a permission lapses: None when any path never expires."""
    if any(r.expires == NEVER for r in reasons):
        return None
    return micros_to_rfc3339(max(r.expires for r in reasons))


def encode_cursor(kind: str, key: list[Any]) -> str:
    """An opaque cursor naming the last item of a page."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> list[Any] | None:
    """The key a cursor names; 400 invalid_cursor when it is not this endpoint's."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(value, list) or not value or value[0] != kind:
        raise _bad_cursor()
    return value[1:]


def _bad_cursor() -> FakeError:
    return FakeError(
        400,
        "invalid_cursor",
        "cursor is not one this endpoint issued",
        [{"field": "cursor", "rule": "must be a next_cursor returned by this endpoint"}],
    )


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Each invalid field with the rule it broke."""
    details = []
    for error in exc.errors()[:100]:
        parts = []
        for item in error.get("loc", ()):
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif item not in EVENT_KINDS:
                parts.append(("." if parts else "") + str(item))
        rule = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"field": "".join(parts) or "body", "rule": rule})
    return details


EVENT_KINDS = frozenset(
    {"grant", "revoke", "add_member", "remove_member", "define_role", "delete_role"}
)


@dataclass(frozen=True)
class Response:
    """An answer: status, JSON body, extra headers."""

    status: int
    body: Json
    headers: Mapping[str, str] = field(default_factory=dict)


class ContractHandler:
    """The HTTP contract (section 4) over an InMemoryPermstore, independent of any framework."""

    def __init__(self, store: InMemoryPermstore) -> None:
        self.store = store

    def __call__(
        self, method: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Answer one request; raw_path keeps its percent-encoding."""
        try:
            return self._route(
                method, raw_path, parse_qs(query, keep_blank_values=True), headers, body
            )
        except FakeError as exc:
            extra = {"Retry-After": "1"} if exc.status in (429, 503) else {}
            return Response(exc.status, exc.body(), extra)

    def _route(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if raw_path in ("/healthz", "/readyz"):
            return Response(200, {"status": "ok"})
        if not raw_path.startswith("/v1/"):
            raise FakeError(404, "not_found", "Not Found")
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise FakeError(401, "unauthenticated", "a bearer token is required")
        if len(body) > MAX_BODY:
            raise FakeError(413, "too_large", "request body is over 4 MiB")
        parts = raw_path[len("/v1/") :].split("/")
        params = {k: v[-1] for k, v in query.items()}
        if method == "POST" and parts == ["events"]:
            return self._events(body)
        if method == "POST" and parts == ["check"]:
            return self._check(_json(body))
        if method == "POST" and parts == ["check", "batch"]:
            return self._batch(_json(body))
        if method == "GET" and len(parts) >= 3 and parts[0] == "tenants":
            tenant = unquote(parts[1])
            _require("tenant", tenant, ids.is_tenant(tenant), ids.TENANT_RULE)
            rest = parts[2:]
            if len(rest) == 3 and rest[0] == "principals" and rest[2] == "permissions":
                return self._permissions(tenant, unquote(rest[1]), params)
            if len(rest) >= 3 and rest[0] == "resources" and rest[-1] == "principals":
                return self._who_can(tenant, unquote("/".join(rest[1:-1])), params)
            if rest == ["audit", "events"]:
                return self._audit_events(tenant, params)
            if rest == ["audit", "check"]:
                return self._audit_check(tenant, params)
            if rest == ["freshness"]:
                return Response(200, self.store.freshness(tenant))
            if rest == ["changes"]:
                return self._changes(tenant, params, headers)
        raise FakeError(404, "not_found", "Not Found")

    def _events(self, body: bytes) -> Response:
        try:
            batch = EventBatch.model_validate_json(body)
        except ValidationError as exc:
            details = validation_details(exc)
            fields = ", ".join(d["field"] for d in details[:5])
            raise FakeError(422, "invalid_request", f"invalid input: {fields}", details) from exc
        token = self.store.apply(batch.events)
        return Response(202, {"accepted": len(batch.events), "token": token})

    def _read_point(self, body: Json) -> tuple[str, str]:
        tenant = _text(body, "tenant")
        _require("tenant", tenant, ids.is_tenant(tenant), ids.TENANT_RULE)
        consistency = body.get("consistency")
        if consistency is not None:
            if not isinstance(consistency, dict) or not isinstance(
                consistency.get("at_least"), str
            ):
                raise invalid("consistency.at_least", "must be a token string")
            self.store.require_reached(tenant, consistency["at_least"])
        return tenant, self.store.token(tenant)

    def _check(self, body: Json) -> Response:
        tenant, token = self._read_point(body)
        principal, resource, action = _triple(body, "")
        reasons = self.store.decide(tenant, principal, resource, action)
        return Response(
            200, {"allowed": bool(reasons), "token": token, "reasons": reason_json(reasons)}
        )

    def _batch(self, body: Json) -> Response:
        tenant, token = self._read_point(body)
        checks = body.get("checks")
        if not isinstance(checks, list) or not 1 <= len(checks) <= 1000:
            raise invalid("checks", "must be a list of 1-1000 checks")
        results = []
        for index, item in enumerate(checks):
            if not isinstance(item, dict):
                raise invalid(f"checks[{index}]", "must be an object")
            principal, resource, action = _triple(item, f"checks[{index}].")
            reasons = self.store.decide(tenant, principal, resource, action)
            results.append({"allowed": bool(reasons), "reasons": reason_json(reasons)})
        return Response(200, {"results": results, "token": token})

    def _permissions(self, tenant: str, principal: str, params: Mapping[str, str]) -> Response:
        _require("principal", principal, ids.is_principal(principal), ids.PRINCIPAL_RULE)
        limit = _limit(params)
        after = tuple(decode_cursor("perm", params.get("cursor")) or ("", ""))
        token = self.store.token(tenant)
        found = [f for f in self.store.permissions(tenant, principal) if (f[0], f[1]) > after]
        page, more = found[:limit], len(found) > limit
        items = [
            {"resource": p, "action": a, "reasons": reason_json(r), "expires_at": latest_expiry(r)}
            for p, a, r in page
        ]
        cursor = encode_cursor("perm", [page[-1][0], page[-1][1]]) if more else None
        return Response(200, {"permissions": items, "next_cursor": cursor, "token": token})

    def _who_can(self, tenant: str, resource: str, params: Mapping[str, str]) -> Response:
        if "*" in resource:
            raise invalid("resource", "who-can names a concrete resource, not a pattern")
        _require("resource", resource, ids.is_resource(resource), ids.RESOURCE_RULE)
        action = params.get("action")
        if action is not None:
            _require("action", action, ids.is_action(action), ids.ACTION_RULE)
        limit = _limit(params)
        after = tuple(decode_cursor("who", params.get("cursor")) or ("", ""))
        token = self.store.token(tenant)
        found = [f for f in self.store.who_can(tenant, resource, action) if (f[0], f[1]) > after]
        page, more = found[:limit], len(found) > limit
        items = [{"principal": p, "action": a, "reasons": reason_json(r)} for p, a, r in page]
        cursor = encode_cursor("who", [page[-1][0], page[-1][1]]) if more else None
        return Response(200, {"principals": items, "next_cursor": cursor, "token": token})

    def _audit_events(self, tenant: str, params: Mapping[str, str]) -> Response:
        principal, resource = params.get("principal"), params.get("resource")
        if principal is not None:
            _require("principal", principal, ids.is_principal(principal), ids.PRINCIPAL_RULE)
        if resource is not None:
            _require("resource", resource, ids.is_pattern(resource), ids.PATTERN_RULE)
        start, end = _time(params, "from"), _time(params, "to")
        limit = _limit(params)
        after = decode_cursor("audit", params.get("cursor"))
        after_key = (int(after[0]), int(after[1])) if after else (-1, -1)
        found = [
            r
            for r in self.store.audit(
                tenant,
                principal,
                resource,
                to_micros(start) if start else 0,
                to_micros(end) if end else 2**62,
            )
            if (r.recorded_at, r.offset) > after_key
        ]
        page, more = found[:limit], len(found) > limit
        events = [
            {"event": r.body, "recorded_at": micros_to_rfc3339(r.recorded_at), "position": r.offset}
            for r in page
        ]
        cursor = encode_cursor("audit", [page[-1].recorded_at, page[-1].offset]) if more else None
        return Response(200, {"events": events, "next_cursor": cursor})

    def _changes(
        self, tenant: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        if "text/event-stream" in headers.get("accept", ""):
            raise FakeError(
                406,
                "not_acceptable",
                "the in-memory permstore serves changes as JSON pages (long-poll with wait)",
            )
        after: tuple[LogPoint, int | None] | None = None
        if "after" in params:
            try:
                after = decode_change_point(tenant, params["after"])
            except MalformedTokenError as exc:
                raise FakeError(
                    400,
                    "invalid_token",
                    str(exc),
                    [{"field": "after", "rule": "must be a position or next token"}],
                ) from exc
        raw_wait = params.get("wait", "0")
        try:
            wait = float(raw_wait)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= 30:
            raise invalid("wait", "must be a number of seconds from 0 to 30")
        items, following = self.store.changes_after(tenant, after, _limit(params), wait)
        return Response(200, {"changes": [record for _, record in items], "next": following})

    def _audit_check(self, tenant: str, params: Mapping[str, str]) -> Response:
        principal, resource, action = _triple(dict(params), "")
        moment = _time(params, "at")
        if moment is None:
            raise invalid("at", "field required")
        reasons = self.store.decide_at(tenant, principal, resource, action, to_micros(moment))
        at = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return Response(200, {"allowed": bool(reasons), "reasons": reason_json(reasons), "at": at})


def _json(body: bytes) -> Json:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise invalid("body", "must be JSON") from exc
    if not isinstance(value, dict):
        raise invalid("body", "must be a JSON object")
    return value


def _text(body: Mapping[str, Any], name: str, prefix: str = "") -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise invalid(prefix + name, "field required" if value is None else "must be a string")
    return value


def _require(name: str, value: str, ok: bool, rule: str) -> None:
    if not ok:
        raise invalid(name, rule)


def _triple(body: Mapping[str, Any], prefix: str) -> tuple[str, str, str]:
    principal = _text(body, "principal", prefix)
    resource = _text(body, "resource", prefix)
    action = _text(body, "action", prefix)
    _require(prefix + "principal", principal, ids.is_principal(principal), ids.PRINCIPAL_RULE)
    if "*" in resource:
        raise invalid(prefix + "resource", "a check names a concrete resource, not a pattern")
    _require(prefix + "resource", resource, ids.is_resource(resource), ids.RESOURCE_RULE)
    _require(prefix + "action", action, ids.is_action(action), ids.ACTION_RULE)
    return principal, resource, action


def _limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        parsed: datetime = TIME_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise invalid(name, "must be an RFC 3339 time with a timezone") from exc
    return parsed
