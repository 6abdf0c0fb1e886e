"""A short path for well-formed checks: the same answers, without FastAPI's per-request work.

Checks are the hot path (thousands a second), and routing, dependency solving and request
objects cost more CPU than the answer itself (docs/performance.md). This middleware answers a
check or batch check only when the call is ordinary: a JSON body that validates, a credential
that passes the routes' own `authorize` (deps.py) with the check scope. It then calls
`answer_check` / `answer_batch`, the functions the routes call (they refuse a tenant outside the
token themselves). Anything else is handed, body and all, to the FastAPI route, which gives the
one authoritative refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from permstore.services.api.deps import Services, authorize
from permstore.services.api.errors import (
    STORE_DOWN_ERRORS,
    ApiError,
    api_error_response,
    store_down_response,
)
from permstore.services.api.models import BatchCheckRequest, CheckRequest
from permstore.services.api.queries import answer_batch, answer_check
from permstore.services.api.routes import router
from permstore.services.auth import Caller
from permstore.services.auth import Scope as AuthScope

R = TypeVar("R", CheckRequest, BatchCheckRequest)
LANE_CALLS = Counter(
    "permstore_check_fast_lane_total",
    "Check calls answered by the fast lane or handed to the route",
    ["outcome"],
)
ANSWERED, ROUTED = LANE_CALLS.labels("answered"), LANE_CALLS.labels("routed")


@dataclass(frozen=True, slots=True)
class Lane(Generic[R]):
    """The request model of a laned route and the function both paths answer with."""

    model: type[R]
    answer: Callable[[Services, Caller, R, str], Awaitable[Response]]
    route: BaseRoute

    async def respond(
        self, services: Services, path: str, authorization: str | None, body: bytes
    ) -> Response | None:
        """The answer, or None when the call is anything but ordinary."""
        try:
            request = self.model.model_validate_json(body)
            # The route's own authorization; a refused call goes on to the route, which
            # refuses it again (and logs it) with the one authoritative answer.
            caller = await authorize(
                services, authorization, AuthScope.CHECK, None, path, quiet=True
            )
        except (ValidationError, ApiError):
            return None
        try:
            # The answer itself refuses a tenant outside the caller's token, as in the route.
            return await self.answer(services, caller, request, path)
        except ApiError as exc:
            return api_error_response(exc)
        except STORE_DOWN_ERRORS as exc:
            return store_down_response(exc, path)


# The FastAPI routes the lane stands in for: metrics label laned answers with their template.
_ROUTES = {getattr(route, "path", None): route for route in router.routes}
LANES: dict[str, Lane[CheckRequest] | Lane[BatchCheckRequest]] = {
    "/v1/check": Lane(CheckRequest, answer_check, _ROUTES["/v1/check"]),
    "/v1/check/batch": Lane(BatchCheckRequest, answer_batch, _ROUTES["/v1/check/batch"]),
}


class CheckFastLane:
    """Answers ordinary POST /v1/check and /v1/check/batch calls; passes on everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = LANES.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        incoming = Request(scope, receive)
        content_type = incoming.headers.get("content-type", "")
        services: Services = scope["app"].state.services
        is_json = content_type.split(";")[0].strip().lower() == "application/json"
        if not is_json or not services.settings.check_fast_lane:
            await self.app(scope, receive, send)
            return
        body = await incoming.body()
        authorization = incoming.headers.get("authorization")
        response = await lane.respond(services, scope["path"], authorization, body)
        if response is None:
            ROUTED.inc()
            await self.app(scope, _replay(body, receive), send)
            return
        ANSWERED.inc()
        scope["route"] = lane.route
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body out again, then defers to the server."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
