"""Typed Python client of the permstore HTTP API (sync and async), and a FastAPI guard."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx


class PermstoreError(Exception):
    """An error answer from permstore, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class CheckResult:
    """A decision with the paths that grant it and the token of the view used."""

    allowed: bool
    reasons: list[dict[str, Any]]
    token: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items, the cursor of the next page (None on the last page)
    and, for reads of a view, the consistency token of that view."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    token: str | None = None


def _event(kind: str, tenant: str, actor: str, reason: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": fields.pop("event_id", None) or uuid.uuid4().hex,
        "tenant": tenant,
        "type": kind,
        "actor": actor,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if reason is not None:
        body["reason"] = reason
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _raise_for(response: httpx.Response) -> Any:
    if response.status_code < 400:
        return response.json()
    try:
        error = response.json()["error"]
        raise PermstoreError(
            response.status_code, error["code"], error["message"], error.get("details")
        )
    except (ValueError, KeyError, TypeError):
        raise PermstoreError(response.status_code, "http_error", response.text[:200]) from None


def _consistency(at_least: str | None) -> dict[str, Any]:
    return {"consistency": {"at_least": at_least}} if at_least else {}


class _Requests:
    """Request bodies and paths shared by the sync and async clients."""

    @staticmethod
    def check(
        tenant: str, principal: str, resource: str, action: str, at_least: str | None
    ) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "principal": principal,
            "resource": resource,
            "action": action,
            **_consistency(at_least),
        }


class PermstoreClient:
    """Blocking client. Use as a context manager or call close()."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def __enter__(self) -> PermstoreClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def publish(self, events: Sequence[Mapping[str, Any]]) -> str:
        """POST events (1-500, one tenant); returns the consistency token."""
        body = _raise_for(self._http.post("/v1/events", json={"events": list(events)}))
        return str(body["token"])

    def grant(
        self,
        tenant: str,
        principal: str,
        resource: str,
        permission: str,
        *,
        actor: str,
        expires_at: str | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Grant a permission; returns the consistency token."""
        return self.publish(
            [
                _event(
                    "grant",
                    tenant,
                    actor,
                    reason,
                    principal=principal,
                    resource=resource,
                    permission=permission,
                    expires_at=expires_at,
                    event_id=event_id,
                )
            ]
        )

    def revoke(
        self,
        tenant: str,
        principal: str,
        resource: str,
        permission: str,
        *,
        actor: str,
        reason: str | None = None,
    ) -> str:
        """Revoke a grant; returns the consistency token."""
        return self.publish(
            [
                _event(
                    "revoke",
                    tenant,
                    actor,
                    reason,
                    principal=principal,
                    resource=resource,
                    permission=permission,
                )
            ]
        )

    def add_member(
        self, tenant: str, group: str, member: str, *, actor: str, reason: str | None = None
    ) -> str:
        """Add member to group; returns the consistency token."""
        return self.publish(
            [_event("add_member", tenant, actor, reason, group=group, member=member)]
        )

    def remove_member(
        self, tenant: str, group: str, member: str, *, actor: str, reason: str | None = None
    ) -> str:
        """Remove member from group; returns the consistency token."""
        return self.publish(
            [_event("remove_member", tenant, actor, reason, group=group, member=member)]
        )

    def define_role(self, tenant: str, role: str, actions: Sequence[str], *, actor: str) -> str:
        """Define or redefine a role; returns the consistency token."""
        return self.publish(
            [_event("define_role", tenant, actor, None, role=role, actions=list(actions))]
        )

    def check(
        self,
        tenant: str,
        principal: str,
        resource: str,
        action: str,
        *,
        at_least: str | None = None,
    ) -> CheckResult:
        """May principal perform action on resource?"""
        body = _raise_for(
            self._http.post(
                "/v1/check", json=_Requests.check(tenant, principal, resource, action, at_least)
            )
        )
        return CheckResult(bool(body["allowed"]), list(body["reasons"]), str(body["token"]))

    def check_many(
        self,
        tenant: str,
        checks: Sequence[tuple[str, str, str]],
        *,
        at_least: str | None = None,
    ) -> list[CheckResult]:
        """Batch check (principal, resource, action) triples, answered in order."""
        body = _raise_for(
            self._http.post(
                "/v1/check/batch",
                json={
                    "tenant": tenant,
                    "checks": [{"principal": p, "resource": r, "action": a} for p, r, a in checks],
                    **_consistency(at_least),
                },
            )
        )
        token = str(body["token"])
        return [CheckResult(bool(r["allowed"]), list(r["reasons"]), token) for r in body["results"]]

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query = {k: v for k, v in {**params, "cursor": cursor}.items() if v is not None}
            body = _raise_for(self._http.get(path, params=query))
            yield from body[key]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def permissions(
        self, tenant: str, principal: str, *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every effective permission of a principal, following cursors."""
        who = quote(principal, safe="")
        path = f"/v1/tenants/{quote(tenant, safe='')}/principals/{who}/permissions"
        return self._pages(path, "permissions", {"limit": page_size})

    def who_can(
        self, tenant: str, resource: str, *, action: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every user and service that may act on a resource, following cursors."""
        path = (
            f"/v1/tenants/{quote(tenant, safe='')}/resources/{quote(resource, safe='')}/principals"
        )
        return self._pages(path, "principals", {"limit": page_size, "action": action})

    def history(
        self,
        tenant: str,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Recorded events naming a principal or resource, oldest first."""
        path = f"/v1/tenants/{quote(tenant, safe='')}/audit/events"
        params = {
            "principal": principal,
            "resource": resource,
            "from": since,
            "to": until,
            "limit": page_size,
        }
        return self._pages(path, "events", params)

    def audit_check(
        self, tenant: str, principal: str, resource: str, action: str, at: str
    ) -> CheckResult:
        """The decision at a past time."""
        body = _raise_for(
            self._http.get(
                f"/v1/tenants/{quote(tenant, safe='')}/audit/check",
                params={"principal": principal, "resource": resource, "action": action, "at": at},
            )
        )
        return CheckResult(bool(body["allowed"]), list(body["reasons"]))

    def _page(self, path: str, key: str, params: dict[str, Any]) -> Page:
        query = {k: v for k, v in params.items() if v is not None}
        body = _raise_for(self._http.get(path, params=query))
        token = body.get("token")
        return Page(
            list(body[key]), body.get("next_cursor") or None, None if token is None else str(token)
        )

    def permissions_page(
        self, tenant: str, principal: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page:
        """One page of a principal's effective permissions, from cursor (None: the first)."""
        who = quote(principal, safe="")
        path = f"/v1/tenants/{quote(tenant, safe='')}/principals/{who}/permissions"
        return self._page(path, "permissions", {"limit": limit, "cursor": cursor})

    def who_can_page(
        self,
        tenant: str,
        resource: str,
        *,
        action: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """One page of the users and services that may act on a resource, from cursor."""
        path = (
            f"/v1/tenants/{quote(tenant, safe='')}/resources/{quote(resource, safe='')}/principals"
        )
        return self._page(path, "principals", {"limit": limit, "action": action, "cursor": cursor})

    def history_page(
        self,
        tenant: str,
        *,
        principal: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """One page of the recorded events naming a principal or resource, oldest first."""
        path = f"/v1/tenants/{quote(tenant, safe='')}/audit/events"
        params = {
            "principal": principal,
            "resource": resource,
            "from": since,
            "to": until,
            "cursor": cursor,
            "limit": limit,
        }
        return self._page(path, "events", params)

    def unused_findings_page(
        self,
        tenant: str,
        *,
        days: int,
        kind: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """One page of unused-access findings over a window of days (contract section 7)."""
        path = f"/v1/tenants/{quote(tenant, safe='')}/findings/unused"
        params = {"days": days, "kind": kind, "cursor": cursor, "limit": limit}
        return self._page(path, "findings", params)


class AsyncPermstoreClient:
    """Asyncio client for services on the hot path. Use `async with` or call aclose()."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    async def __aenter__(self) -> AsyncPermstoreClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> str:
        """POST events (1-500, one tenant); returns the consistency token."""
        body = _raise_for(await self._http.post("/v1/events", json={"events": list(events)}))
        return str(body["token"])

    async def check(
        self,
        tenant: str,
        principal: str,
        resource: str,
        action: str,
        *,
        at_least: str | None = None,
    ) -> CheckResult:
        """May principal perform action on resource?"""
        response = await self._http.post(
            "/v1/check", json=_Requests.check(tenant, principal, resource, action, at_least)
        )
        body = _raise_for(response)
        return CheckResult(bool(body["allowed"]), list(body["reasons"]), str(body["token"]))


def require_permission(
    client: AsyncPermstoreClient,
    *,
    tenant: str,
    action: str,
    resource: Callable[[Any], str],
    principal: Callable[[Any], str],
) -> Callable[..., Any]:
    """A FastAPI dependency for a client service: 403 unless permstore allows the request.

    `resource` and `principal` take the incoming Request and name what to check.
    """
    from fastapi import HTTPException, Request

    async def guard(request: Request) -> CheckResult:
        result = await client.check(tenant, principal(request), resource(request), action)
        if not result.allowed:
            raise HTTPException(status_code=403, detail="permission denied")
        return result

    return guard
