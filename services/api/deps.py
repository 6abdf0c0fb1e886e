"""FastAPI dependencies: the wired services and the authenticated, scoped caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import structlog
from fastapi import Depends, Request

from permstore.adapters.cassandra_layout.reader import PositionedCache, ViewReader
from permstore.adapters.settings import Settings
from permstore.adapters.view_updates import TouchFollower
from permstore.core.findings import Inventory
from permstore.services.api.errors import ApiError
from permstore.services.api.middleware import RateLimiter
from permstore.services.api.publisher import EventPublisher
from permstore.services.api.usage import UsageRecorder
from permstore.services.auth import AuthenticationError, Authenticator, Caller, Scope

log = structlog.get_logger("permstore.api")

INVENTORY_ENTRIES = 200_000
"""Grants, memberships and role actions the inventory cache holds in all (a few tens of MB)."""


@dataclass
class Services:
    """Everything a route needs, built once by the app's lifespan."""

    settings: Settings
    reader: ViewReader
    publisher: EventPublisher | None
    authenticator: Authenticator
    rate_limiter: RateLimiter
    usage: UsageRecorder | None = None
    # Keeps the reader's principal cache exact (None: the cache is off).
    touches: TouchFollower | None = None
    # Tenants' inventories (findings fold the whole log), valid while the position is unchanged.
    inventories: PositionedCache[str, Inventory] = field(
        default_factory=lambda: PositionedCache("inventory", INVENTORY_ENTRIES, Inventory.size)
    )


async def get_services(request: Request) -> Services:
    """The wired services of this process."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def authorize(
    services: Services,
    authorization: str | None,
    scope: Scope,
    tenant: str | None,
    path: str,
    *,
    quiet: bool = False,
) -> Caller:
    """The one authorization of a call: authenticate, rate-limit the subject, then check the
    scope and (for tenant paths) the tenant; raises the ApiError to answer with.

    quiet leaves the refusal unlogged, for a caller (the check fast lane) that hands refused
    calls on to the route, which logs them once.
    """
    try:
        caller = services.authenticator.authenticate(authorization)
    except AuthenticationError as exc:
        if not quiet:
            log.warning("auth.refused", reason=exc.reason, path=path)
        raise ApiError(
            401,
            "unauthenticated",
            f"a valid bearer token is required ({exc.reason})",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    if not await services.rate_limiter.allow(caller.subject):
        if not quiet:
            log.warning("rate.limited", subject=caller.subject, path=path)
        raise ApiError(429, "rate_limited", "too many requests", headers={"Retry-After": "1"})
    why = caller.denial_reason(tenant, scope)
    if why is not None:
        if quiet:
            raise ApiError(403, "forbidden", f"this token may not do that ({why})")
        deny(caller, tenant, why, path)
    return caller


def scoped(scope: Scope) -> Callable[[Request, Services], Awaitable[Caller]]:
    """Dependency: a caller holding scope (and, for tenant paths, access to that tenant)."""

    async def dependency(request: Request, services: ServicesDep) -> Caller:
        caller = await authorize(
            services,
            request.headers.get("authorization"),
            scope,
            request.path_params.get("tenant"),
            request.url.path,
        )
        request.state.subject = caller.subject
        return caller

    return dependency


def deny(caller: Caller, tenant: str | None, why: str, path: str) -> None:
    """Log and refuse a call outside the caller's tenant or scopes."""
    log.warning(
        "auth.forbidden",
        subject=caller.subject,
        token_id=caller.token_id,
        tenant=tenant,
        reason=why,
        path=path,
    )
    raise ApiError(403, "forbidden", f"this token may not do that ({why})")


def ensure_tenant(caller: Caller, tenant: str, path: str) -> None:
    """Refuse a body naming a tenant outside the caller's token."""
    if not caller.may_access(tenant):
        deny(caller, tenant, "wrong_tenant", path)


CheckCaller = Annotated[Caller, Depends(scoped(Scope.CHECK))]
WriteCaller = Annotated[Caller, Depends(scoped(Scope.WRITE))]
AuditCaller = Annotated[Caller, Depends(scoped(Scope.AUDIT))]
AdminCaller = Annotated[Caller, Depends(scoped(Scope.ADMIN))]
