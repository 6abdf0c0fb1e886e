"""Sync and async permstore clients for every endpoint of the contract."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ._core.events import Event
from ._http import (
    MAX_WAIT,
    RETRY_STATUSES,
    TRANSIENT_ERRORS,
    Call,
    ConsistencyTokens,
    Requests,
    RetryPolicy,
    raise_for,
    reconnect_delay,
    retry_after,
    transport_error,
)
from .models import (
    AuditDecision,
    AuditEvent,
    BatchDecision,
    Change,
    ChangesPage,
    Decision,
    Finding,
    Freshness,
    Page,
    PermissionItem,
    PrincipalItem,
    UsageItem,
    WriteResult,
)

__version__ = "0.1.0"
USER_AGENT = f"permstore-client-python/{__version__}"
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("permstore_client")


def _page(model: type[M], body: Any, key: str) -> Page[M]:
    items = [model.model_validate(item) for item in body[key]]
    return Page[M](
        items=items,
        next_cursor=body.get("next_cursor") or None,
        token=body.get("token"),
        as_of=body.get("as_of"),
    )


class PermstoreClient:
    """Synchronous permstore client: pooled connections, retries, read-your-writes."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        read_your_writes: bool = True,
        tokens: ConsistencyTokens | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url,
            headers={**headers, "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
            limits=limits,
        )
        self._requests = Requests(tenant, actor)
        self.retry = retry
        self.read_your_writes = read_your_writes
        self.tokens = tokens if tokens is not None else ConsistencyTokens()

    def __enter__(self) -> PermstoreClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _send(self, call: Call) -> Any:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.query(),
                    json=call.body,
                    timeout=call.timeout(self._http.timeout),
                )
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise transport_error(exc) from exc
                time.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self.retry.delay(attempt, retry_after(response)))
                continue
            body = raise_for(response)
            if call.is_write and call.tenant and isinstance(body, dict) and "token" in body:
                self.tokens.remember(call.tenant, str(body["token"]))
            return body
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _at_least(self, tenant: str | None, at_least: str | None, fresh: bool | None) -> str | None:
        if at_least is not None:
            return at_least
        if fresh if fresh is not None else self.read_your_writes:
            return self.tokens.latest(self._requests.tenant_of(tenant))
        return None

    # writes

    def publish(self, events: Sequence[Mapping[str, Any] | Event]) -> WriteResult:
        """POST 1-500 events of one tenant; the token is kept for read-your-writes."""
        return WriteResult.model_validate(self._send(self._requests.publish(events)))

    @property
    def tenant(self) -> str | None:
        """The default tenant of calls that name none."""
        return self._requests.tenant

    def make_event(self, kind: str, *, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        """A complete, validated event of kind (id, tenant, actor, time filled in) to publish."""
        return self._requests.event(kind, tenant, fields)

    def _write(self, kind: str, tenant: str | None, **fields: Any) -> WriteResult:
        return self.publish([self._requests.event(kind, tenant, fields)])

    def grant(
        self,
        principal: str,
        resource: str,
        permission: str,
        *,
        expires_at: str | None = None,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Grant permission (an action or role:<name>) on a resource pattern."""
        return self._write(
            "grant",
            tenant,
            principal=principal,
            resource=resource,
            permission=permission,
            expires_at=expires_at,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    def revoke(
        self,
        principal: str,
        resource: str,
        permission: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Remove the grant with exactly this triple."""
        return self._write(
            "revoke",
            tenant,
            principal=principal,
            resource=resource,
            permission=permission,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    def add_member(
        self,
        group: str,
        member: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Make member (any principal) belong to group."""
        return self._write(
            "add_member",
            tenant,
            group=group,
            member=member,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    def remove_member(
        self,
        group: str,
        member: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Remove member from group (direct membership only)."""
        return self._write(
            "remove_member",
            tenant,
            group=group,
            member=member,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    def define_role(
        self,
        role: str,
        actions: Sequence[str],
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Define (or redefine) a role as exactly these actions."""
        return self._write(
            "define_role",
            tenant,
            role=role,
            actions=list(actions),
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    def delete_role(
        self,
        role: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Make a role mean no actions (its grants stay)."""
        return self._write(
            "delete_role", tenant, role=role, actor=actor, reason=reason, event_id=event_id
        )

    # reads

    def check(
        self,
        principal: str,
        resource: str,
        action: str,
        *,
        tenant: str | None = None,
        at_least: str | None = None,
        read_your_writes: bool | None = None,
    ) -> Decision:
        """May principal perform action on resource? With the reasons and the view's token."""
        wanted = self._at_least(tenant, at_least, read_your_writes)
        call = self._requests.check(principal, resource, action, tenant, wanted)
        return Decision.model_validate(self._send(call))

    def check_batch(
        self,
        checks: Sequence[tuple[str, str, str]],
        *,
        tenant: str | None = None,
        at_least: str | None = None,
        read_your_writes: bool | None = None,
    ) -> BatchDecision:
        """Check 1-1000 (principal, resource, action) triples, answered in order."""
        wanted = self._at_least(tenant, at_least, read_your_writes)
        call = self._requests.batch(checks, tenant, wanted)
        return BatchDecision.model_validate(self._send(call))

    def permissions_page(
        self,
        principal: str,
        *,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PermissionItem]:
        """One page of a principal's effective permissions."""
        body = self._send(self._requests.permissions(principal, tenant, cursor, limit))
        return _page(PermissionItem, body, "permissions")

    def permissions(
        self, principal: str, *, tenant: str | None = None, limit: int | None = None
    ) -> Iterator[PermissionItem]:
        """Every effective (resource pattern, action) of a principal, following cursors."""
        cursor: str | None = None
        while True:
            page = self.permissions_page(principal, tenant=tenant, cursor=cursor, limit=limit)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def who_can_page(
        self,
        resource: str,
        *,
        action: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PrincipalItem]:
        """One page of the users and services that may act on a resource."""
        body = self._send(self._requests.who_can(resource, action, tenant, cursor, limit))
        return _page(PrincipalItem, body, "principals")

    def who_can(
        self,
        resource: str,
        *,
        action: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> Iterator[PrincipalItem]:
        """Every user and service that may act on a resource, following cursors."""
        cursor: str | None = None
        while True:
            page = self.who_can_page(
                resource, action=action, tenant=tenant, cursor=cursor, limit=limit
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def audit_events_page(
        self,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[AuditEvent]:
        """One page of the recorded events naming a principal or a resource, oldest first."""
        call = self._requests.audit_events(principal, resource, since, until, tenant, cursor, limit)
        return _page(AuditEvent, self._send(call), "events")

    def audit_events(
        self,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> Iterator[AuditEvent]:
        """Every recorded event naming a principal or a resource, following cursors."""
        cursor: str | None = None
        while True:
            page = self.audit_events_page(
                principal=principal,
                resource=resource,
                since=since,
                until=until,
                tenant=tenant,
                cursor=cursor,
                limit=limit,
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def audit_check(
        self, principal: str, resource: str, action: str, at: str, *, tenant: str | None = None
    ) -> AuditDecision:
        """The decision at a past time (RFC 3339)."""
        call = self._requests.audit_check(principal, resource, action, at, tenant)
        return AuditDecision.model_validate(self._send(call))

    def freshness(self, *, tenant: str | None = None) -> Freshness:
        """How current the tenant's views are."""
        return Freshness.model_validate(self._send(self._requests.freshness(tenant)))

    def changes(
        self,
        tenant: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        wait: float | None = None,
    ) -> ChangesPage:
        """One page of effective-permission changes after a token, and the token to follow."""
        call = self._requests.changes(after, limit, wait, tenant)
        return ChangesPage.model_validate(self._send(call))

    def follow_changes(
        self,
        tenant: str | None = None,
        after: str | None = None,
        *,
        wait: float = MAX_WAIT,
        limit: int | None = None,
    ) -> Iterator[Change]:
        """Every change after a token (None: from now) as it happens; reconnects, never ends."""
        failures = 0
        while True:
            try:
                page = self.changes(tenant, after, limit, wait)
            except TRANSIENT_ERRORS as exc:
                delay = reconnect_delay(self.retry, failures, exc)
                log.warning("changes: %s; reconnecting in %.1f s", exc, delay)
                time.sleep(delay)
                failures += 1
                continue
            failures = 0
            yield from page.changes
            # Only a page yielded whole moves the resume point, so nothing is skipped or repeated.
            after = page.next

    def unused_page(
        self,
        days: int,
        *,
        kind: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Finding]:
        """One page of unused-access findings (contract section 7)."""
        body = self._send(self._requests.unused(days, kind, tenant, cursor, limit))
        return _page(Finding, body, "findings")

    def usage_page(
        self,
        principal: str,
        *,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[UsageItem]:
        """One page of how a principal used its permissions (contract section 7)."""
        body = self._send(self._requests.usage(principal, tenant, cursor, limit))
        return _page(UsageItem, body, "permissions")


class AsyncPermstoreClient:
    """Asynchronous permstore client: pooled connections, retries, read-your-writes."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        read_your_writes: bool = True,
        tokens: ConsistencyTokens | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={**headers, "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
            limits=limits,
        )
        self._requests = Requests(tenant, actor)
        self.retry = retry
        self.read_your_writes = read_your_writes
        self.tokens = tokens if tokens is not None else ConsistencyTokens()

    async def __aenter__(self) -> AsyncPermstoreClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.query(),
                    json=call.body,
                    timeout=call.timeout(self._http.timeout),
                )
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise transport_error(exc) from exc
                await asyncio.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(self.retry.delay(attempt, retry_after(response)))
                continue
            body = raise_for(response)
            if call.is_write and call.tenant and isinstance(body, dict) and "token" in body:
                self.tokens.remember(call.tenant, str(body["token"]))
            return body
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _at_least(self, tenant: str | None, at_least: str | None, fresh: bool | None) -> str | None:
        if at_least is not None:
            return at_least
        if fresh if fresh is not None else self.read_your_writes:
            return self.tokens.latest(self._requests.tenant_of(tenant))
        return None

    # writes

    async def publish(self, events: Sequence[Mapping[str, Any] | Event]) -> WriteResult:
        """POST 1-500 events of one tenant; the token is kept for read-your-writes."""
        return WriteResult.model_validate(await self._send(self._requests.publish(events)))

    @property
    def tenant(self) -> str | None:
        """The default tenant of calls that name none."""
        return self._requests.tenant

    def make_event(self, kind: str, *, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        """A complete, validated event of kind (id, tenant, actor, time filled in) to publish."""
        return self._requests.event(kind, tenant, fields)

    async def _write(self, kind: str, tenant: str | None, **fields: Any) -> WriteResult:
        return await self.publish([self._requests.event(kind, tenant, fields)])

    async def grant(
        self,
        principal: str,
        resource: str,
        permission: str,
        *,
        expires_at: str | None = None,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Grant permission (an action or role:<name>) on a resource pattern."""
        return await self._write(
            "grant",
            tenant,
            principal=principal,
            resource=resource,
            permission=permission,
            expires_at=expires_at,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    async def revoke(
        self,
        principal: str,
        resource: str,
        permission: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Remove the grant with exactly this triple."""
        return await self._write(
            "revoke",
            tenant,
            principal=principal,
            resource=resource,
            permission=permission,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    async def add_member(
        self,
        group: str,
        member: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Make member (any principal) belong to group."""
        return await self._write(
            "add_member",
            tenant,
            group=group,
            member=member,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    async def remove_member(
        self,
        group: str,
        member: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Remove member from group (direct membership only)."""
        return await self._write(
            "remove_member",
            tenant,
            group=group,
            member=member,
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    async def define_role(
        self,
        role: str,
        actions: Sequence[str],
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Define (or redefine) a role as exactly these actions."""
        return await self._write(
            "define_role",
            tenant,
            role=role,
            actions=list(actions),
            actor=actor,
            reason=reason,
            event_id=event_id,
        )

    async def delete_role(
        self,
        role: str,
        *,
        tenant: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> WriteResult:
        """Make a role mean no actions (its grants stay)."""
        return await self._write(
            "delete_role", tenant, role=role, actor=actor, reason=reason, event_id=event_id
        )

    # reads

    async def check(
        self,
        principal: str,
        resource: str,
        action: str,
        *,
        tenant: str | None = None,
        at_least: str | None = None,
        read_your_writes: bool | None = None,
    ) -> Decision:
        """May principal perform action on resource? With the reasons and the view's token."""
        wanted = self._at_least(tenant, at_least, read_your_writes)
        call = self._requests.check(principal, resource, action, tenant, wanted)
        return Decision.model_validate(await self._send(call))

    async def check_batch(
        self,
        checks: Sequence[tuple[str, str, str]],
        *,
        tenant: str | None = None,
        at_least: str | None = None,
        read_your_writes: bool | None = None,
    ) -> BatchDecision:
        """Check 1-1000 (principal, resource, action) triples, answered in order."""
        wanted = self._at_least(tenant, at_least, read_your_writes)
        call = self._requests.batch(checks, tenant, wanted)
        return BatchDecision.model_validate(await self._send(call))

    async def permissions_page(
        self,
        principal: str,
        *,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PermissionItem]:
        """One page of a principal's effective permissions."""
        body = await self._send(self._requests.permissions(principal, tenant, cursor, limit))
        return _page(PermissionItem, body, "permissions")

    async def permissions(
        self, principal: str, *, tenant: str | None = None, limit: int | None = None
    ) -> AsyncIterator[PermissionItem]:
        """Every effective (resource pattern, action) of a principal, following cursors."""
        cursor: str | None = None
        while True:
            page = await self.permissions_page(principal, tenant=tenant, cursor=cursor, limit=limit)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def who_can_page(
        self,
        resource: str,
        *,
        action: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PrincipalItem]:
        """One page of the users and services that may act on a resource."""
        body = await self._send(self._requests.who_can(resource, action, tenant, cursor, limit))
        return _page(PrincipalItem, body, "principals")

    async def who_can(
        self,
        resource: str,
        *,
        action: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[PrincipalItem]:
        """Every user and service that may act on a resource, following cursors."""
        cursor: str | None = None
        while True:
            page = await self.who_can_page(
                resource, action=action, tenant=tenant, cursor=cursor, limit=limit
            )
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def audit_events_page(
        self,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[AuditEvent]:
        """One page of the recorded events naming a principal or a resource, oldest first."""
        call = self._requests.audit_events(principal, resource, since, until, tenant, cursor, limit)
        return _page(AuditEvent, await self._send(call), "events")

    async def audit_events(
        self,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AuditEvent]:
        """Every recorded event naming a principal or a resource, following cursors."""
        cursor: str | None = None
        while True:
            page = await self.audit_events_page(
                principal=principal,
                resource=resource,
                since=since,
                until=until,
                tenant=tenant,
                cursor=cursor,
                limit=limit,
            )
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def audit_check(
        self, principal: str, resource: str, action: str, at: str, *, tenant: str | None = None
    ) -> AuditDecision:
        """The decision at a past time (RFC 3339)."""
        call = self._requests.audit_check(principal, resource, action, at, tenant)
        return AuditDecision.model_validate(await self._send(call))

    async def freshness(self, *, tenant: str | None = None) -> Freshness:
        """How current the tenant's views are."""
        return Freshness.model_validate(await self._send(self._requests.freshness(tenant)))

    async def changes(
        self,
        tenant: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        wait: float | None = None,
    ) -> ChangesPage:
        """One page of effective-permission changes after a token, and the token to follow."""
        call = self._requests.changes(after, limit, wait, tenant)
        return ChangesPage.model_validate(await self._send(call))

    async def follow_changes(
        self,
        tenant: str | None = None,
        after: str | None = None,
        *,
        wait: float = MAX_WAIT,
        limit: int | None = None,
    ) -> AsyncIterator[Change]:
        """Every change after a token (None: from now) as it happens; reconnects, never ends."""
        failures = 0
        while True:
            try:
                page = await self.changes(tenant, after, limit, wait)
            except TRANSIENT_ERRORS as exc:
                delay = reconnect_delay(self.retry, failures, exc)
                log.warning("changes: %s; reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                failures += 1
                continue
            failures = 0
            for change in page.changes:
                yield change
            # Only a page yielded whole moves the resume point, so nothing is skipped or repeated.
            after = page.next

    async def unused_page(
        self,
        days: int,
        *,
        kind: str | None = None,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Finding]:
        """One page of unused-access findings (contract section 7)."""
        body = await self._send(self._requests.unused(days, kind, tenant, cursor, limit))
        return _page(Finding, body, "findings")

    async def usage_page(
        self,
        principal: str,
        *,
        tenant: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[UsageItem]:
        """One page of how a principal used its permissions (contract section 7)."""
        body = await self._send(self._requests.usage(principal, tenant, cursor, limit))
        return _page(UsageItem, body, "permissions")
