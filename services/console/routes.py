"""Console pages and forms under /console: sign-in, reads, audit, findings and changes.

Every handler resolves the signed-in caller from the encrypted session cookie (or a trusted
identity proxy) and applies the same tenant and scope rules as the HTTP API before it calls
the use cases in services/console/queries.py.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog
from cachetools import TTLCache
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from permstore.adapters.settings import Settings
from permstore.core.identifiers import is_principal, is_tenant, pattern_matches
from permstore.services.api.deps import Services
from permstore.services.auth import AuthenticationError, Caller, Scope, parse_scopes
from permstore.services.console import queries
from permstore.services.console.queries import InvalidInputError
from permstore.services.console.session import (
    COOKIE,
    PRE_COOKIE,
    ConsoleSettings,
    SessionCodec,
    SessionData,
    load_secret,
    new_csrf,
)
from permstore.services.console.views import (
    bar_plot,
    describe_event,
    grants_per_week,
    matches,
    parse_rfc3339,
)

log = structlog.get_logger("permstore.console")
HERE = Path(__file__).resolve().parent
PREFIX = "/console"
PAGE = 50
SESSION_FALLBACK_SECONDS = 12 * 3600
LINK_MAX_USES = 1

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["describe"] = describe_event
router = APIRouter(prefix=PREFIX, include_in_schema=False)

CHANGE_FIELDS: dict[str, tuple[str, ...]] = {
    "grant": ("principal", "resource", "permission", "expires_at"),
    "revoke": ("principal", "resource", "permission"),
    "add_member": ("group", "member"),
    "remove_member": ("group", "member"),
    "define_role": ("role", "actions"),
    "delete_role": ("role",),
}


class RefusedError(Exception):
    """A page the caller may not see: rendered as an HTML error page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class SignInRequiredError(Exception):
    """No valid session: send the browser to the sign-in page."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ConsoleState:
    """What the console keeps per process: settings, cookie codec, used sign-in links."""

    settings: ConsoleSettings
    codec: SessionCodec
    # One-time sign-in links: token ids already exchanged (bounded; entries outlive no link).
    used_links: TTLCache[str, bool]


@dataclass
class Ctx:
    """The signed-in caller of one request."""

    caller: Caller
    session: SessionData
    services: Services
    tenant: str
    refresh_cookie: bool = False

    @property
    def principal(self) -> str | None:
        """The caller's subject when it is a principal of the contract (user:, service:)."""
        return self.caller.subject if is_principal(self.caller.subject) else None


def state(request: Request) -> ConsoleState:
    """The console's per-process state."""
    found: ConsoleState = request.app.state.console
    return found


def services_of(request: Request) -> Services:
    """The API's wired services."""
    found: Services = request.app.state.services
    return found


def _proxy_caller(request: Request, settings: ConsoleSettings) -> Caller | None:
    if not settings.proxy_header:
        return None
    client = request.client.host if request.client else ""
    if client not in settings.proxy_trusted_ips:
        return None
    identity = request.headers.get(settings.proxy_header, "").strip()
    if not identity or settings.proxy_tenant is None:
        return None
    subject = identity if ":" in identity else f"user:{identity}"
    if not is_principal(subject):
        raise RefusedError(403, "Identity not accepted", "the proxy's identity is not a principal")
    return Caller(
        subject=subject,
        tenant=settings.proxy_tenant,
        scopes=parse_scopes(settings.proxy_scopes),
        token_id=f"proxy:{subject}",
    )


async def signed_in(request: Request) -> Ctx:
    """The caller of this request, or SignInRequiredError."""
    console = state(request)
    services = services_of(request)
    session = console.codec.decode(request.cookies.get(COOKIE))
    proxied = _proxy_caller(request, console.settings)
    if proxied is not None:
        fresh = session is None or session.mode != "proxy" or session.subject != proxied.subject
        if fresh:
            session = SessionData("proxy", proxied.tenant, new_csrf(), subject=proxied.subject)
        assert session is not None
        return Ctx(proxied, session, services, proxied.tenant, refresh_cookie=fresh)
    if session is None or session.mode != "token":
        raise SignInRequiredError()
    try:
        caller = services.authenticator.authenticate(f"Bearer {session.token}")
    except AuthenticationError as exc:
        raise SignInRequiredError(exc.reason) from exc
    if not await services.rate_limiter.allow(caller.subject):
        raise RefusedError(429, "Too many requests", "too many requests; wait a second and retry")
    if not caller.may_access(session.tenant):
        raise SignInRequiredError("wrong_tenant")
    return Ctx(caller, session, services, session.tenant)


async def allowed(request: Request, scope: Scope) -> Ctx:
    """The caller, refused (403, logged) unless it holds scope on the session's tenant."""
    return _holding(request, await signed_in(request), scope)


def _holding(request: Request, ctx: Ctx, scope: Scope) -> Ctx:
    why = ctx.caller.denial_reason(ctx.tenant, scope)
    if why is not None:
        log.warning(
            "auth.forbidden",
            subject=ctx.caller.subject,
            token_id=ctx.caller.token_id,
            tenant=ctx.tenant,
            reason=why,
            path=request.url.path,
        )
        raise RefusedError(
            403,
            "Not allowed",
            f"Your sign-in may not do this: the {scope.value} scope on tenant {ctx.tenant} "
            f"is needed ({why}).",
        )
    return ctx


async def posted(request: Request, scope: Scope) -> tuple[Ctx, FormData]:
    """The form of a POST whose CSRF token matches the session's, by a caller holding scope."""
    ctx = await signed_in(request)
    form = await request.form()
    sent = form.get("csrf")
    origin = request.headers.get("origin")
    # Under the API's Referrer-Policy no-referrer, browsers send "Origin: null" even for
    # same-origin forms; the session's CSRF token is the check that matters.
    same_origin = origin in (None, "null", f"{request.url.scheme}://{request.url.netloc}")
    if (
        not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), ctx.session.csrf.encode())
        or not same_origin
    ):
        log.warning("console.csrf_refused", subject=ctx.caller.subject, path=request.url.path)
        raise RefusedError(403, "Form expired", "This form is not valid (CSRF check). Reload it.")
    return _holding(request, ctx, scope), form


def text(form: FormData | dict[str, Any], name: str) -> str:
    """A trimmed text field of a form or query ('' when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def opt(request: Request, name: str) -> str | None:
    """A non-empty query parameter, or None."""
    value = request.query_params.get(name, "").strip()
    return value or None


def render(
    request: Request, ctx: Ctx | None, name: str, status: int = 200, **context: Any
) -> Response:
    """A page of the console, with the session cookie renewed when it changed."""
    context.update(
        ctx=ctx,
        caller=ctx.caller if ctx else None,
        tenant=ctx.tenant if ctx else None,
        csrf=ctx.session.csrf if ctx else context.get("csrf", ""),
        scopes=sorted(s.value for s in ctx.caller.scopes) if ctx else [],
        nav=name.removesuffix(".html"),
    )
    started = time.perf_counter()
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["server-timing"] = f"render;dur={(time.perf_counter() - started) * 1e3:.1f}"
    if ctx is not None and ctx.refresh_cookie:
        set_session(request, response, ctx.session, SESSION_FALLBACK_SECONDS)
    return response


def set_session(request: Request, response: Response, data: SessionData, max_age: int) -> None:
    """Store the session in its encrypted cookie, expiring with the credential."""
    response.set_cookie(
        COOKIE,
        state(request).codec.encode(data),
        max_age=max(1, max_age),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def go(path: str, **params: str | None) -> RedirectResponse:
    """A 303 to a console path."""
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{PREFIX}{path}{'?' + query if query else ''}", status_code=303)


# --- sign-in --------------------------------------------------------------------------------


def _signin_page(request: Request, status: int = 200, **context: Any) -> Response:
    csrf = request.cookies.get(PRE_COOKIE) or new_csrf()
    response = render(request, None, "signin.html", status, csrf=csrf, **context)
    response.set_cookie(
        PRE_COOKIE,
        csrf,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _start_session(request: Request, caller: Caller, token: str, tenant: str) -> Response:
    response = go("/access")
    lifetime = caller.expires_at - time.time()
    max_age = int(lifetime) if lifetime != float("inf") else SESSION_FALLBACK_SECONDS
    set_session(request, response, SessionData("token", tenant, new_csrf(), token=token), max_age)
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    log.info("console.signed_in", subject=caller.subject, tenant=tenant, token_id=caller.token_id)
    return response


def _tenant_for(caller: Caller, wanted: str) -> str:
    """The tenant a session works on; InvalidInputError when the token cannot work on it."""
    if caller.is_operator:
        if not wanted:
            raise InvalidInputError(
                {"tenant": "this token is for every tenant: name one to work on"}
            )
        if not is_tenant(wanted):
            raise InvalidInputError({"tenant": "tenant must match [a-z0-9][a-z0-9_-]{0,62}"})
        return wanted
    if wanted and wanted != caller.tenant:
        raise InvalidInputError({"tenant": f"this token is for tenant {caller.tenant} only"})
    return caller.tenant


@router.get("/")
@router.get("")
async def home(request: Request) -> Response:
    """The console's front door: My access when signed in, else sign-in."""
    try:
        await signed_in(request)
    except SignInRequiredError:
        return go("/signin")
    return go("/access")


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    """The sign-in page: paste a token."""
    reason = opt(request, "reason")
    return _signin_page(request, notice=_signin_notice(reason))


def _signin_notice(reason: str | None) -> str | None:
    if reason == "expired":
        return "Your session has expired. Sign in again."
    if reason == "signed_out":
        return "You are signed out."
    if reason:
        return "Please sign in again."
    return None


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange a pasted token for a session cookie."""
    form = await request.form()
    sent, expected = text(form, "csrf"), request.cookies.get(PRE_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _signin_page(request, 403, errors={"form": "The form expired; try again."})
    token, wanted = text(form, "token"), text(form, "tenant")
    services = services_of(request)
    try:
        caller = services.authenticator.authenticate(f"Bearer {token}")
    except AuthenticationError as exc:
        log.warning("console.signin_refused", reason=exc.reason)
        return _signin_page(
            request, 401, errors={"token": f"not a valid token ({exc.reason})"}, tenant=wanted
        )
    try:
        tenant = _tenant_for(caller, wanted)
    except InvalidInputError as exc:
        return _signin_page(request, 422, errors=exc.errors, tenant=wanted)
    return _start_session(request, caller, token, tenant)


@router.get("/signin/link")
async def signin_link(request: Request) -> Response:
    """A one-time sign-in link (printed by `make run`): exchanged once, then refused."""
    token, wanted = opt(request, "token") or "", opt(request, "tenant") or ""
    services = services_of(request)
    try:
        caller = services.authenticator.authenticate(f"Bearer {token}")
        tenant = _tenant_for(caller, wanted)
    except (AuthenticationError, InvalidInputError):
        return _signin_page(request, 401, errors={"form": "This sign-in link is not valid."})
    used = state(request).used_links
    if caller.token_id in used:
        return _signin_page(request, 401, errors={"form": "This sign-in link was already used."})
    used[caller.token_id] = True
    return _start_session(request, caller, token, tenant)


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session."""
    await _csrf_only(request)
    response = go("/signin", reason="signed_out")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def _csrf_only(request: Request) -> None:
    try:
        ctx = await signed_in(request)
    except SignInRequiredError:
        return
    form = await request.form()
    if not hmac.compare_digest(text(form, "csrf").encode(), ctx.session.csrf.encode()):
        raise RefusedError(403, "Form expired", "This form is not valid (CSRF check). Reload it.")


@router.post("/tenant")
async def switch_tenant(request: Request) -> Response:
    """An operator's sign-in moves to another tenant."""
    ctx = await signed_in(request)
    form = await request.form()
    if not hmac.compare_digest(text(form, "csrf").encode(), ctx.session.csrf.encode()):
        raise RefusedError(403, "Form expired", "This form is not valid (CSRF check). Reload it.")
    try:
        tenant = _tenant_for(ctx.caller, text(form, "tenant"))
    except InvalidInputError as exc:
        raise RefusedError(422, "Tenant not accepted", exc.errors["tenant"]) from exc
    response = go("/access")
    session = SessionData("token", tenant, ctx.session.csrf, token=ctx.session.token)
    lifetime = ctx.caller.expires_at - time.time()
    set_session(
        request,
        response,
        session,
        int(lifetime) if lifetime != float("inf") else SESSION_FALLBACK_SECONDS,
    )
    return response


# --- reads ----------------------------------------------------------------------------------


@router.get("/access")
async def my_access(request: Request) -> Response:
    """The signed-in principal's effective permissions, searchable, with reasons."""
    ctx = await allowed(request, Scope.CHECK)
    query = opt(request, "q") or ""
    cursor = opt(request, "cursor")
    principal = ctx.principal
    rows: list[Any] = []
    next_cursor = None
    usage = None
    if principal is not None:
        page = await queries.permissions(
            ctx.services, ctx.caller, ctx.tenant, principal, cursor, 1000
        )
        rows = [
            item
            for item in page.permissions
            if matches(
                query,
                item.resource,
                item.action,
                *(r.description for r in item.reasons),
            )
        ]
        next_cursor = page.next_cursor
        usage = await queries.usage(request, ctx.services, ctx.caller, ctx.tenant, principal)
    return render(
        request,
        ctx,
        "access.html",
        principal=principal,
        rows=rows,
        query=query,
        next_cursor=next_cursor,
        usage=usage,
    )


@router.get("/can")
async def can(request: Request) -> Response:
    """Can principal do action on resource? The answer, every path, or the nearest grants."""
    ctx = await allowed(request, Scope.CHECK)
    form = {
        "principal": opt(request, "principal") or (ctx.principal or ""),
        "resource": opt(request, "resource") or "",
        "action": opt(request, "action") or "",
    }
    answer = None
    errors: dict[str, str] = {}
    nearest_own: list[Any] = []
    nearest_others: list[Any] = []
    if request.query_params.get("resource") is not None:
        try:
            answer = await queries.check(
                ctx.services,
                ctx.caller,
                ctx.tenant,
                form["principal"],
                form["resource"],
                form["action"],
            )
        except InvalidInputError as exc:
            errors = exc.errors
        if answer is not None and not answer["allowed"]:
            nearest_own, nearest_others = await _nearest(ctx, **form)
    return render(
        request,
        ctx,
        "can.html",
        form=form,
        answer=answer,
        errors=errors,
        nearest_own=nearest_own,
        nearest_others=nearest_others,
    )


async def _nearest(ctx: Ctx, principal: str, resource: str, action: str) -> tuple[Any, Any]:
    """Grants that come close to a denied check: the principal's other actions on the
    resource, and other principals who may do the action there."""
    own = await queries.permissions(ctx.services, ctx.caller, ctx.tenant, principal, None, 1000)
    same_resource = [p for p in own.permissions if pattern_matches(p.resource, resource)]
    others = await queries.who_can(ctx.services, ctx.caller, ctx.tenant, resource, action, None, 20)
    return same_resource, others.principals


@router.get("/who")
async def who(request: Request) -> Response:
    """Every user and service that may act on a resource, paged."""
    ctx = await allowed(request, Scope.CHECK)
    resource, action = opt(request, "resource"), opt(request, "action")
    cursor = opt(request, "cursor")
    size = opt(request, "limit") or str(PAGE)
    limit = int(size) if size.isdigit() and 1 <= int(size) <= 200 else PAGE
    page = None
    errors: dict[str, str] = {}
    if resource is not None:
        try:
            page = await queries.who_can(
                ctx.services, ctx.caller, ctx.tenant, resource, action, cursor, limit
            )
        except InvalidInputError as exc:
            errors = exc.errors
    return render(
        request,
        ctx,
        "who.html",
        form={"resource": resource or "", "action": action or ""},
        limit=limit if limit != PAGE else None,
        page=page,
        errors=errors,
    )


@router.get("/directory")
async def directory(request: Request) -> Response:
    """A principal's groups, a group's members (direct and nested), the roles' actions."""
    ctx = await allowed(request, Scope.CHECK)
    principal = opt(request, "principal")
    group = opt(request, "group")
    errors: dict[str, str] = {}
    groups: list[tuple[str, str, bool]] | None = None
    members = None
    truncated = False
    if principal is not None:
        if is_principal(principal):
            reached = await queries.groups_of(ctx.services, ctx.tenant, principal)
            groups = sorted((g, via, via == principal) for g, via in reached.items())
        else:
            errors["principal"] = "principal must be user:<id>, service:<id> or group:<id>"
    if group is not None:
        if is_principal(group) and group.startswith("group:"):
            members, truncated = await queries.directory(ctx.services).members(ctx.tenant, group)
        else:
            errors["group"] = "group must be group:<id>"
    roles = await queries.directory(ctx.services).roles(ctx.tenant)
    return render(
        request,
        ctx,
        "directory.html",
        form={"principal": principal or "", "group": group or ""},
        groups=groups,
        members=members,
        truncated=truncated,
        roles=roles,
        errors=errors,
    )


# --- audit ----------------------------------------------------------------------------------

PLOT_EVENTS = 5000


@router.get("/audit")
async def audit(request: Request) -> Response:
    """The audit timeline, a point-in-time answer with the events around it, and a plot."""
    ctx = await allowed(request, Scope.AUDIT)
    q = {k: opt(request, k) for k in ("principal", "resource", "from", "to", "cursor")}
    pit = {k: opt(request, k) for k in ("at", "at_principal", "at_resource", "at_action")}
    errors: dict[str, str] = {}
    timeline = None
    try:
        timeline = await queries.audit_events(
            ctx.services,
            ctx.caller,
            ctx.tenant,
            principal=q["principal"],
            resource=q["resource"],
            start=q["from"],
            end=q["to"],
            cursor=q["cursor"],
            limit=PAGE,
        )
    except InvalidInputError as exc:
        errors.update(exc.errors)
    point = None
    around: list[Any] = []
    if pit["at"] is not None:
        try:
            point = await queries.audit_check(
                ctx.services,
                ctx.caller,
                ctx.tenant,
                pit["at_principal"] or "",
                pit["at_resource"] or "",
                pit["at_action"] or "",
                pit["at"],
            )
            around = await _around(
                ctx, pit["at_principal"] or "", pit["at_resource"] or "", point.at
            )
        except InvalidInputError as exc:
            errors.update({f"at_{k}" if k != "at" else k: v for k, v in exc.errors.items()})
    plot = None
    if q["principal"] is not None and "principal" not in errors:
        plot = await _plot(ctx, q["principal"])
    return render(
        request,
        ctx,
        "audit.html",
        q={k: v or "" for k, v in q.items()},
        pit={k: v or "" for k, v in pit.items()},
        timeline=timeline,
        point=point,
        around=around,
        plot=plot,
        errors=errors,
    )


async def _around(ctx: Ctx, principal: str, resource: str, at: str) -> list[Any]:
    """Events naming the principal or the resource within a week either side of at."""
    moment = parse_rfc3339(at)
    start = (moment - timedelta(days=7)).isoformat()
    end = (moment + timedelta(days=7)).isoformat()
    found: dict[int, Any] = {}
    for who, what in ((principal, None), (None, resource)):
        page = await queries.audit_events(
            ctx.services,
            ctx.caller,
            ctx.tenant,
            principal=who,
            resource=what,
            start=start,
            end=end,
            cursor=None,
            limit=20,
        )
        found.update((e.position, e) for e in page.events)
    return sorted(found.values(), key=lambda e: (e.recorded_at, e.position))


async def _plot(ctx: Ctx, principal: str) -> Any:
    """The principal's directly held grants per week, laid out for SVG."""
    events: list[tuple[datetime, dict[str, Any]]] = []
    cursor = None
    while len(events) < PLOT_EVENTS:
        page = await queries.audit_events(
            ctx.services,
            ctx.caller,
            ctx.tenant,
            principal=principal,
            resource=None,
            start=None,
            end=None,
            cursor=cursor,
            limit=1000,
        )
        events.extend((parse_rfc3339(e.recorded_at), e.event) for e in page.events)
        cursor = page.next_cursor
        if cursor is None:
            break
    weeks = grants_per_week(principal, events, datetime.now(UTC))
    return bar_plot(weeks) if weeks else None


# --- findings -------------------------------------------------------------------------------


@router.get("/findings")
async def findings(request: Request) -> Response:
    """Unused-access findings with their evidence; select some and revoke them."""
    ctx = await allowed(request, Scope.AUDIT)
    days_text = opt(request, "days") or "90"
    kind = opt(request, "kind")
    errors: dict[str, str] = {}
    days = int(days_text) if days_text.isdigit() and int(days_text) <= 3650 else None
    if days is None:
        errors["days"] = "days must be a whole number from 0 to 3650"
    data = None
    if days is not None:
        data = await queries.unused_findings(
            request, ctx.services, ctx.caller, ctx.tenant, days, kind
        )
    items = []
    for finding in (data or {}).get("findings", []):
        event = (finding.get("recommendation") or {}).get("event")
        items.append((finding, orjson.dumps(event).decode() if event else None))
    return render(
        request,
        ctx,
        "findings.html",
        available=data is not None or bool(errors),
        items=items,
        form={"days": days_text, "kind": kind or ""},
        errors=errors,
        done=opt(request, "done"),
    )


@router.post("/findings/revoke")
async def findings_revoke(request: Request) -> Response:
    """Apply the recommendations of the selected findings, with a confirmation and reason."""
    ctx, form = await posted(request, Scope.WRITE)
    reason = text(form, "reason")
    selected = [v for v in form.getlist("finding") if isinstance(v, str)]
    if not selected or not reason or text(form, "confirm") != "yes":
        raise RefusedError(
            422,
            "Nothing revoked",
            "Select at least one finding, give a reason and tick the confirmation.",
        )
    count = 0
    for raw in selected:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RefusedError(422, "Nothing revoked", "a selected finding is malformed") from exc
        if not isinstance(event, dict) or event.get("type") not in (
            "revoke",
            "remove_member",
            "define_role",
        ):
            raise RefusedError(422, "Nothing revoked", "a selected finding is not a revocation")
        try:
            await queries.publish(request, ctx.services, ctx.caller, _complete(ctx, event, reason))
        except InvalidInputError as exc:
            raise RefusedError(
                422, "Not revoked", "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            ) from exc
        count += 1
    return go("/findings", done=str(count))


# --- changes --------------------------------------------------------------------------------


def _complete(ctx: Ctx, fields: dict[str, Any], reason: str) -> dict[str, Any]:
    """An event of the signed-in actor on the session's tenant, with a fresh id and time."""
    return {
        **fields,
        "event_id": f"console-{uuid.uuid4().hex}",
        "tenant": ctx.tenant,
        "actor": ctx.caller.subject,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "reason": reason,
    }


@router.get("/changes")
async def changes_form(request: Request) -> Response:
    """Forms for every event type."""
    ctx = await allowed(request, Scope.WRITE)
    return render(
        request, ctx, "changes.html", kinds=CHANGE_FIELDS, values={}, errors={}, kind=None
    )


@router.post("/changes")
async def change(request: Request) -> Response:
    """Validate one change with the API's rules and append it to the tenant's log."""
    ctx, form = await posted(request, Scope.WRITE)
    kind = text(form, "type")
    if kind not in CHANGE_FIELDS:
        raise RefusedError(422, "Unknown change", "type must be one of " + ", ".join(CHANGE_FIELDS))
    values = {name: text(form, name) for name in (*CHANGE_FIELDS[kind], "reason")}
    errors: dict[str, str] = {}
    if not values["reason"]:
        errors["reason"] = "a reason is required (ticket or justification)"
    fields: dict[str, Any] = {"type": kind}
    for name in CHANGE_FIELDS[kind]:
        if name == "actions":
            fields[name] = [a for a in values[name].replace(",", " ").split() if a]
        elif name == "expires_at":
            if values[name]:
                fields[name] = values[name]
        else:
            fields[name] = values[name]
    published = None
    if errors:
        # Show every field's problem at once, not the reason first and the rest next time.
        errors = {**queries.validation_errors(_complete(ctx, fields, "-")), **errors}
    else:
        try:
            published = await queries.publish(
                request, ctx.services, ctx.caller, _complete(ctx, fields, values["reason"])
            )
        except InvalidInputError as exc:
            errors = exc.errors
    if errors:
        log.info("console.change_refused", kind=kind, fields=sorted(errors))
        return render(
            request,
            ctx,
            "changes.html",
            422,
            kinds=CHANGE_FIELDS,
            values=values,
            errors=errors,
            kind=kind,
        )
    assert published is not None
    log.info("console.change", kind=kind, event_id=published.event_id, actor=ctx.caller.subject)
    return render(
        request,
        ctx,
        "changes.html",
        kinds=CHANGE_FIELDS,
        values={},
        errors={},
        kind=None,
        published=published,
        published_kind=kind,
    )


# --- wiring ---------------------------------------------------------------------------------


def _refusal_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RefusedError)
    return render(request, None, "error.html", exc.status, title=exc.title, message=exc.message)


def _sign_in_again(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequiredError)
    if request.method == "GET":
        response: Response = go("/signin", reason=exc.reason or "required")
    else:
        response = render(
            request,
            None,
            "error.html",
            401,
            title="Signed out",
            message="Your session has ended; sign in again.",
        )
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


def _field_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInputError)
    message = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
    return render(request, None, "error.html", 422, title="Invalid input", message=message)


def install_console(app: FastAPI) -> None:
    """Serve the console at /console on the API app (unless PERMSTORE_CONSOLE_ENABLED=false)."""
    settings = ConsoleSettings()
    if not settings.enabled:
        return
    app.state.console = ConsoleState(
        settings=settings,
        codec=SessionCodec(load_secret(settings, Settings().secrets_dir)),
        used_links=TTLCache(maxsize=10_000, ttl=SESSION_FALLBACK_SECONDS * 2),
    )
    app.include_router(router)
    app.mount(
        f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console-static"
    )
    app.add_exception_handler(RefusedError, _refusal_page)
    app.add_exception_handler(SignInRequiredError, _sign_in_again)
    app.add_exception_handler(InvalidInputError, _field_refusal)
