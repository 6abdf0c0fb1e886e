"""What the sync and async clients share: requests as data, answers, retries, tokens."""

from __future__ import annotations

import random
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from ._core.events import EVENT_ADAPTER, Event
from .errors import (
    PermstoreError,
    RateLimitedError,
    TransportError,
    TransportTimeoutError,
    UnavailableError,
    error_for,
)

RETRY_STATUSES = frozenset({429, 503})
MAX_TENANTS_TRACKED = 4096
MAX_WAIT = 30.0
"""The longest long poll of the changes endpoint, in seconds (contract section 6)."""


class ConsistencyTokens:
    """The newest write token per tenant, shared by clients that must read their own writes.

    Bounded (least recently written tenants are forgotten first) and thread-safe.
    """

    def __init__(self, max_tenants: int = MAX_TENANTS_TRACKED) -> None:
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._max = max_tenants
        self._lock = threading.Lock()

    def remember(self, tenant: str, token: str) -> None:
        """Record the token a write to tenant answered with."""
        with self._lock:
            self._tokens[tenant] = token
            self._tokens.move_to_end(tenant)
            while len(self._tokens) > self._max:
                self._tokens.popitem(last=False)

    def latest(self, tenant: str) -> str | None:
        """The newest write token of tenant, if any."""
        with self._lock:
            return self._tokens.get(tenant)

    def forget(self, tenant: str | None = None) -> None:
        """Drop one tenant's token, or every token."""
        with self._lock:
            if tenant is None:
                self._tokens.clear()
            else:
                self._tokens.pop(tenant, None)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429 and 503 (and on connection failures), honouring Retry-After."""

    attempts: int = 4
    backoff: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number attempt (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        jitter: float = random.uniform(0.5, 1.0)  # spreads retries of many callers apart
        return min(self.backoff * float(2**attempt) * jitter, self.max_delay)


NO_RETRIES = RetryPolicy(attempts=1)

TRANSIENT_ERRORS: tuple[type[PermstoreError], ...] = (
    UnavailableError,
    RateLimitedError,
    TransportError,
)
"""Failures a follower of the changes outlives: it reconnects from the last token it followed."""
MAX_BACKOFF_EXPONENT = 30


def reconnect_delay(policy: RetryPolicy, failures: int, error: PermstoreError) -> float:
    """Seconds before reconnect number failures (0-based): Retry-After, else the backoff."""
    return policy.delay(min(failures, MAX_BACKOFF_EXPONENT), error.retry_after)


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API, independent of sync or async."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    tenant: str | None = None
    is_write: bool = False
    holds: float | None = None
    """Seconds the server may hold the request before answering (a long poll)."""

    def query(self) -> dict[str, Any]:
        """Query parameters without the unset ones."""
        return {k: v for k, v in self.params.items() if v is not None}

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The client's timeout, with the read allowance stretched by the time the server holds."""
        if not self.holds or base.read is None:
            return base
        return httpx.Timeout(
            connect=base.connect, read=base.read + self.holds, write=base.write, pool=base.pool
        )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (moment - datetime.now(UTC)).total_seconds()


def raise_for(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer, or the exception of its error code."""
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        code, message, details = str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.text[:500], None
    raise error_for(response.status_code, code, message, details, retry_after(response))


def transport_error(exc: httpx.HTTPError) -> PermstoreError:
    """A transport failure as a PermstoreError (status 0); timeouts as TransportTimeoutError."""
    kind = TransportTimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
    return kind(0, "transport", f"{type(exc).__name__}: {exc}")


def seconds(value: float | None) -> int | float | None:
    """A duration for a query string: whole seconds as an integer ("30", never "30.0")."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def segment(value: str) -> str:
    """A path segment, percent-encoded (a resource may contain '/')."""
    return quote(value, safe="")


class Requests:
    """Builds every call of the contract; the clients only send them."""

    def __init__(self, tenant: str | None, actor: str | None) -> None:
        self.tenant = tenant
        self.actor = actor

    def tenant_of(self, tenant: str | None) -> str:
        """The tenant of a call: the argument, else the client's default."""
        chosen = tenant or self.tenant
        if not chosen:
            raise ValueError("no tenant: pass tenant= or construct the client with one")
        return chosen

    def event(self, kind: str, tenant: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A complete event of kind, validated here by the same models the server uses."""
        actor = fields.get("actor") or self.actor
        if not actor:
            raise ValueError("no actor: pass actor= or construct the client with one")
        raw = {
            "event_id": fields.get("event_id") or f"evt-{uuid.uuid4().hex}",
            "tenant": self.tenant_of(tenant),
            "type": kind,
            "actor": actor,
            "occurred_at": fields.get("occurred_at") or now_rfc3339(),
            **{k: v for k, v in fields.items() if v is not None and k not in {"actor"}},
        }
        validated: Event = EVENT_ADAPTER.validate_python(raw)
        result: dict[str, Any] = EVENT_ADAPTER.dump_python(
            validated, mode="json", exclude_none=True
        )
        return result

    def publish(self, events: Sequence[Mapping[str, Any] | Event]) -> Call:
        """POST /v1/events."""
        bodies = [
            dict(e)
            if isinstance(e, Mapping)
            else EVENT_ADAPTER.dump_python(e, mode="json", exclude_none=True)
            for e in events
        ]
        tenant = str(bodies[0].get("tenant")) if bodies else None
        return Call("POST", "/v1/events", body={"events": bodies}, tenant=tenant, is_write=True)

    @staticmethod
    def consistency(at_least: str | None) -> dict[str, Any]:
        """The consistency member of a read body."""
        return {} if at_least is None else {"consistency": {"at_least": at_least}}

    def check(
        self, principal: str, resource: str, action: str, tenant: str | None, at_least: str | None
    ) -> Call:
        """POST /v1/check."""
        tenant = self.tenant_of(tenant)
        body = {"tenant": tenant, "principal": principal, "resource": resource, "action": action}
        return Call("POST", "/v1/check", body={**body, **self.consistency(at_least)}, tenant=tenant)

    def batch(
        self, checks: Sequence[tuple[str, str, str]], tenant: str | None, at_least: str | None
    ) -> Call:
        """POST /v1/check/batch."""
        tenant = self.tenant_of(tenant)
        items = [{"principal": p, "resource": r, "action": a} for p, r, a in checks]
        body = {"tenant": tenant, "checks": items, **self.consistency(at_least)}
        return Call("POST", "/v1/check/batch", body=body, tenant=tenant)

    def permissions(
        self, principal: str, tenant: str | None, cursor: str | None, limit: int | None
    ) -> Call:
        """GET a principal's permissions."""
        t = self.tenant_of(tenant)
        path = f"/v1/tenants/{segment(t)}/principals/{segment(principal)}/permissions"
        return Call("GET", path, {"cursor": cursor, "limit": limit}, tenant=t)

    def who_can(
        self,
        resource: str,
        action: str | None,
        tenant: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Call:
        """GET who may act on a resource."""
        t = self.tenant_of(tenant)
        path = f"/v1/tenants/{segment(t)}/resources/{segment(resource)}/principals"
        return Call("GET", path, {"action": action, "cursor": cursor, "limit": limit}, tenant=t)

    def audit_events(
        self,
        principal: str | None,
        resource: str | None,
        since: str | None,
        until: str | None,
        tenant: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Call:
        """GET the audit timeline."""
        t = self.tenant_of(tenant)
        params = {
            "principal": principal,
            "resource": resource,
            "from": since,
            "to": until,
            "cursor": cursor,
            "limit": limit,
        }
        return Call("GET", f"/v1/tenants/{segment(t)}/audit/events", params, tenant=t)

    def audit_check(
        self, principal: str, resource: str, action: str, at: str, tenant: str | None
    ) -> Call:
        """GET the decision at a past time."""
        t = self.tenant_of(tenant)
        params = {"principal": principal, "resource": resource, "action": action, "at": at}
        return Call("GET", f"/v1/tenants/{segment(t)}/audit/check", params, tenant=t)

    def freshness(self, tenant: str | None) -> Call:
        """GET how current a tenant's views are."""
        t = self.tenant_of(tenant)
        return Call("GET", f"/v1/tenants/{segment(t)}/freshness", tenant=t)

    def changes(
        self, after: str | None, limit: int | None, wait: float | None, tenant: str | None
    ) -> Call:
        """GET effective-permission changes after a token (contract section 6)."""
        t = self.tenant_of(tenant)
        params = {"after": after, "limit": limit, "wait": seconds(wait)}
        path = f"/v1/tenants/{segment(t)}/changes"
        return Call("GET", path, params, tenant=t, holds=wait)

    def unused(
        self,
        days: int,
        kind: str | None,
        tenant: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Call:
        """GET unused-access findings (contract section 7)."""
        t = self.tenant_of(tenant)
        params = {"days": days, "kind": kind, "cursor": cursor, "limit": limit}
        return Call("GET", f"/v1/tenants/{segment(t)}/findings/unused", params, tenant=t)

    def usage(
        self, principal: str, tenant: str | None, cursor: str | None, limit: int | None
    ) -> Call:
        """GET how a principal used its permissions (contract section 7)."""
        t = self.tenant_of(tenant)
        path = f"/v1/tenants/{segment(t)}/principals/{segment(principal)}/usage"
        return Call("GET", path, {"cursor": cursor, "limit": limit}, tenant=t)
