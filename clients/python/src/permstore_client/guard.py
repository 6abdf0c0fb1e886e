"""Guards: a FastAPI dependency and a decorator for plain functions, denying with reasons.

No `from __future__ import annotations` here: FastAPI reads the dependencies' annotations at
runtime, and fastapi is imported inside the functions (it is an optional extra).
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from .cache import DecisionCache
from .client import AsyncPermstoreClient, PermstoreClient
from .errors import PermstoreError
from .models import Decision

P = ParamSpec("P")
R = TypeVar("R")


class PermissionDeniedError(PermstoreError):
    """The principal may not perform the action on the resource."""

    def __init__(self, tenant: str, principal: str, resource: str, action: str) -> None:
        details = {"tenant": tenant, "principal": principal, "resource": resource, "action": action}
        super().__init__(
            403, "permission_denied", f"{principal} may not {action} {resource}", details
        )


def denial_body(tenant: str, principal: str, resource: str, action: str) -> dict[str, Any]:
    """The 403 body a guard answers: what was asked, and that no grant allows it."""
    return {
        "code": "permission_denied",
        "message": f"{principal} may not {action} {resource}",
        "tenant": tenant,
        "principal": principal,
        "resource": resource,
        "action": action,
        "reasons": [],
    }


class Guard:
    """Checks for a service: one async client, one tenant, an optional decision cache."""

    def __init__(
        self,
        client: AsyncPermstoreClient,
        tenant: str,
        *,
        principal: Callable[..., Any] | None = None,
        cache: DecisionCache | None = None,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.principal = principal
        self.cache = cache

    async def allowed(self, principal: str, resource: str, action: str) -> bool:
        """Whether principal may act, through the cache when one is configured."""
        key = (self.tenant, principal, resource, action)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        decision = await self.client.check(principal, resource, action, tenant=self.tenant)
        if self.cache is not None:
            self.cache.put(key, decision.allowed)
        return decision.allowed

    async def decide(self, principal: str, resource: str, action: str) -> Decision:
        """The full decision with reasons (never cached)."""
        return await self.client.check(principal, resource, action, tenant=self.tenant)

    async def enforce(
        self, request: Any, caller: str, action: str, resource: Callable[[Any], Any]
    ) -> str:
        """Raise FastAPI's 403 (with what was asked) unless caller may act; returns caller."""
        from fastapi import HTTPException

        target = resource(request)
        if inspect.isawaitable(target):
            target = await target
        if not isinstance(target, str):
            raise TypeError("resource= must return the resource as a string")
        if not await self.allowed(caller, target, action):
            raise HTTPException(403, denial_body(self.tenant, caller, target, action))
        return caller

    def require(
        self,
        action: str,
        *,
        resource: Callable[[Any], str | Awaitable[str]],
        principal: Callable[..., Any] | None = None,
    ) -> Callable[..., Awaitable[str]]:
        """A FastAPI dependency: the caller's principal when allowed, else 403.

        principal is a dependency of the service's own auth returning the caller's principal
        (`user:<id>`); resource maps the request to the resource checked.
        """
        from fastapi import Depends, Request

        who = principal or self.principal
        if who is None:
            raise ValueError("a guard needs principal=, the service's own auth dependency")

        async def dependency(request: Request, caller: str = Depends(who)) -> str:
            return await self.enforce(request, caller, action, resource)

        return dependency


def require(
    action: str,
    *,
    resource: Callable[[Any], str | Awaitable[str]],
    principal: Callable[..., Any],
) -> Callable[..., Awaitable[str]]:
    """`Depends(require("read", resource=..., principal=...))` with the app's Guard.

    The Guard is looked up at request time in `app.state.permstore`, so tests can swap it.
    """
    from fastapi import Depends, Request

    async def dependency(request: Request, caller: str = Depends(principal)) -> str:
        guard = getattr(request.app.state, "permstore", None)
        if not isinstance(guard, Guard):
            raise RuntimeError("set app.state.permstore to a permstore_client.Guard")
        return await guard.enforce(request, caller, action, resource)

    return dependency


def guarded(
    client: PermstoreClient,
    tenant: str,
    action: str,
    *,
    resource: Callable[..., str],
    principal: Callable[..., str],
    cache: DecisionCache | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a plain function: check first, raise PermissionDeniedError when denied.

    resource and principal receive the function's own arguments.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            who, what = principal(*args, **kwargs), resource(*args, **kwargs)
            key = (tenant, who, what, action)
            allowed = cache.get(key) if cache is not None else None
            if allowed is None:
                allowed = client.check(who, what, action, tenant=tenant).allowed
                if cache is not None:
                    cache.put(key, allowed)
            if not allowed:
                raise PermissionDeniedError(tenant, who, what, action)
            return func(*args, **kwargs)

        return wrapper

    return decorate
