"""Request and response models of the HTTP API (contract section 4)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from permstore.core.identifiers import PRINCIPAL_RULE
from permstore.schemas.events import Action, Principal, Resource, Tenant


def _no_wildcard(value: str) -> str:
    if "*" in value:
        raise ValueError("a check names a concrete resource, not a pattern")
    return value


CheckResource = Annotated[str, AfterValidator(_no_wildcard), Field(max_length=2200)]

# Example values shared by the models below, so that one documented scenario (alice reads an
# engineering spec through group:eng) reads the same in every example of the document.
# The tokens and cursors are real encodings of acme's log point (3, 1041) and of page keys.
# FastAPI drops every null from the document it renders, so an example gives a value to each
# required field that may be null (a null there would make the rendered example invalid).
EXAMPLE_POINT = "ps1.ODIyYjMzYWQ6MzoxMDQx"
EXAMPLE_REASON_GROUP: dict[str, Any] = {
    "kind": "group",
    "grant": {"principal": "group:eng", "resource": "doc:acme/eng/*", "permission": "read"},
    "via_group": "group:eng",
    "via_chain": ["group:backend", "group:eng"],
    "via_role": None,
    "pattern": "doc:acme/eng/*",
    "expires_at": "2026-06-30T00:00:00Z",
    "description": (
        "user:alice (member of group:backend -> group:eng) holds read on doc:acme/eng/*"
    ),
}
EXAMPLE_REASON_DIRECT: dict[str, Any] = {
    "kind": "direct",
    "grant": {
        "principal": "user:alice",
        "resource": "doc:acme/eng/spec-1",
        "permission": "role:editor",
    },
    "via_group": None,
    "via_chain": None,
    "via_role": "editor",
    "pattern": "doc:acme/eng/spec-1",
    "expires_at": "2026-12-31T00:00:00Z",
    "description": "user:alice holds role:editor on doc:acme/eng/spec-1 via role editor",
}
EXAMPLE_EVENT: dict[str, Any] = {
    "event_id": "evt-2026-0001",
    "tenant": "acme",
    "type": "add_member",
    "actor": "service:hr-sync",
    "occurred_at": "2026-01-05T09:30:00Z",
    "group": "group:eng",
    "member": "user:alice",
}

POINT_TEXT = "Consistency token of the view that answered; pass it as consistency.at_least later."
CURSOR_TEXT = "Opaque cursor of the next page, or null on the last page."


def examples(*items: dict[str, Any], forbid_extra: bool = False) -> ConfigDict:
    """Model config carrying OpenAPI examples; forbid_extra keeps a request model strict."""
    if forbid_extra:
        return ConfigDict(extra="forbid", json_schema_extra={"examples": list(items)})
    return ConfigDict(json_schema_extra={"examples": list(items)})


class Strict(BaseModel):
    """Refuse unknown fields so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class Consistency(Strict):
    """Read at least as fresh as a token returned by an earlier write or read.

    The read waits (up to a configured bound, 5 s by default) until the tenant's view has
    applied the token's point, and answers 503 `consistency_timeout` past the bound.
    """

    model_config = examples({"at_least": EXAMPLE_POINT}, forbid_extra=True)

    at_least: str = Field(
        min_length=1, max_length=128, description="A consistency token from this service."
    )


class CheckRequest(Strict):
    """May principal perform action on resource?"""

    model_config = examples(
        {
            "tenant": "acme",
            "principal": "user:alice",
            "resource": "doc:acme/eng/spec-1",
            "action": "read",
        },
        {
            "tenant": "acme",
            "principal": "user:alice",
            "resource": "doc:acme/eng/spec-1",
            "action": "read",
            "consistency": {"at_least": EXAMPLE_POINT},
        },
        forbid_extra=True,
    )

    tenant: Tenant = Field(description="Tenant whose permissions are asked.")
    principal: Principal = Field(description="Who acts: user:<id>, service:<id> or group:<id>.")
    resource: Annotated[Resource, AfterValidator(_no_wildcard)] = Field(
        description="The concrete resource acted on, <type>:<path>; a pattern is refused."
    )
    action: Action = Field(description="The action, such as read or write.")
    consistency: Consistency | None = Field(
        default=None, description="Answer from a view at least as fresh as this token."
    )


class ReasonModel(BaseModel):
    """One path that grants the permission."""

    model_config = examples(EXAMPLE_REASON_GROUP, EXAMPLE_REASON_DIRECT)

    kind: str = Field(description="direct, or group when held through group membership")
    grant: dict[str, str] = Field(description="The grant: principal, resource, permission")
    via_group: str | None = Field(
        default=None,
        description="The group that holds the grant, when held through membership; else null.",
    )
    via_chain: list[str] | None = Field(
        default=None,
        description=(
            "Groups from the principal's direct group up to via_group, in membership order; "
            "null when the grant is held directly (or, briefly, while the processor rewrites "
            "the chain after a membership change)."
        ),
    )
    via_role: str | None = Field(
        default=None, description="The role the grant names (role:<name>), if any."
    )
    pattern: str = Field(description="The grant's resource or pattern that matched.")
    expires_at: str | None = Field(
        default=None, description="When this path lapses (RFC 3339); null when it never does."
    )
    description: str = Field(description="The path in one line, for people.")


class CheckResponse(BaseModel):
    """The decision, the token of the view used, and each path that grants."""

    model_config = examples(
        {"allowed": True, "token": EXAMPLE_POINT, "reasons": [EXAMPLE_REASON_GROUP]},
        {"allowed": False, "token": EXAMPLE_POINT, "reasons": []},
    )

    allowed: bool = Field(description="True when at least one live grant confers the action.")
    token: str = Field(description=POINT_TEXT)
    reasons: list[ReasonModel] = Field(
        description="Every path that grants the action; empty when denied."
    )


class BatchItem(Strict):
    """One check of a batch."""

    model_config = examples(
        {"principal": "user:alice", "resource": "doc:acme/eng/spec-1", "action": "read"},
        forbid_extra=True,
    )

    principal: Principal = Field(description="Who acts: user:<id>, service:<id> or group:<id>.")
    resource: Annotated[Resource, AfterValidator(_no_wildcard)] = Field(
        description="The concrete resource acted on, <type>:<path>; a pattern is refused."
    )
    action: Action = Field(description="The action, such as read or write.")


class BatchCheckRequest(Strict):
    """Up to 1000 checks of one tenant, answered in request order."""

    model_config = examples(
        {
            "tenant": "acme",
            "checks": [
                {"principal": "user:alice", "resource": "doc:acme/eng/spec-1", "action": "read"},
                {"principal": "user:bob", "resource": "doc:acme/eng/spec-1", "action": "write"},
            ],
            "consistency": {"at_least": EXAMPLE_POINT},
        },
        forbid_extra=True,
    )

    tenant: Tenant = Field(description="Tenant every check of the batch belongs to.")
    checks: Annotated[list[BatchItem], Field(min_length=1, max_length=1000)] = Field(
        description="1-1000 checks; the answers come back in this order."
    )
    consistency: Consistency | None = Field(
        default=None, description="Answer every check from a view at least as fresh as this."
    )


class BatchResult(BaseModel):
    """One answer of a batch."""

    model_config = examples({"allowed": True, "reasons": [EXAMPLE_REASON_GROUP]})

    allowed: bool = Field(description="True when at least one live grant confers the action.")
    reasons: list[ReasonModel] = Field(
        description="Every path that grants the action; empty when denied."
    )


class BatchCheckResponse(BaseModel):
    """Answers in request order, all read from one view."""

    model_config = examples(
        {
            "results": [
                {"allowed": True, "reasons": [EXAMPLE_REASON_GROUP]},
                {"allowed": False, "reasons": []},
            ],
            "token": EXAMPLE_POINT,
        }
    )

    results: list[BatchResult] = Field(description="One answer per check, in request order.")
    token: str = Field(description=POINT_TEXT)


class EventsAccepted(BaseModel):
    """Every event was acknowledged by Kafka."""

    model_config = examples({"accepted": 2, "token": EXAMPLE_POINT})

    accepted: int = Field(description="Number of events appended to the tenant's log.")
    token: str = Field(
        description="Consistency token of the last event; reads with it see every event sent."
    )


class PermissionItem(BaseModel):
    """An effective (resource pattern, action) a principal holds."""

    model_config = examples(
        {
            "resource": "doc:acme/eng/*",
            "action": "read",
            "reasons": [EXAMPLE_REASON_GROUP],
            "expires_at": "2026-06-30T00:00:00Z",
        }
    )

    resource: str = Field(description="Resource or pattern the permission covers.")
    action: str = Field(description="The action permitted.")
    reasons: list[ReasonModel] = Field(description="Every path that grants it.")
    expires_at: str | None = Field(
        description="When the last path lapses (RFC 3339), or null when one never expires."
    )


class PermissionsPage(BaseModel):
    """A page of a principal's effective permissions, ordered by (pattern, action)."""

    model_config = examples(
        {
            "permissions": [
                {
                    "resource": "doc:acme/eng/*",
                    "action": "read",
                    "reasons": [EXAMPLE_REASON_GROUP],
                    "expires_at": "2026-06-30T00:00:00Z",
                },
                {
                    "resource": "doc:acme/eng/spec-1",
                    "action": "write",
                    "reasons": [EXAMPLE_REASON_DIRECT],
                    "expires_at": "2026-12-31T00:00:00Z",
                },
            ],
            "next_cursor": "WyJwZXJtIiwiZG9jOmFjbWUvZW5nLyoiLCJyZWFkIl0",
            "token": EXAMPLE_POINT,
        }
    )

    permissions: list[PermissionItem] = Field(description="This page's permissions.")
    next_cursor: str | None = Field(description=CURSOR_TEXT)
    token: str = Field(description=POINT_TEXT)


class PrincipalItem(BaseModel):
    """A user or service that may act on the resource."""

    model_config = examples(
        {"principal": "user:alice", "action": "read", "reasons": [EXAMPLE_REASON_GROUP]}
    )

    principal: str = Field(description="A user or service, never a group.")
    action: str = Field(description="The action it may perform on the resource.")
    reasons: list[ReasonModel] = Field(description="Every path that grants it.")


class PrincipalsPage(BaseModel):
    """A page of who-can, ordered by (principal, action)."""

    model_config = examples(
        {
            "principals": [
                {"principal": "user:alice", "action": "read", "reasons": [EXAMPLE_REASON_GROUP]}
            ],
            "next_cursor": "WyJ3aG8iLCJ1c2VyOmFsaWNlIiwicmVhZCJd",
            "token": EXAMPLE_POINT,
        }
    )

    principals: list[PrincipalItem] = Field(description="This page's principals.")
    next_cursor: str | None = Field(description=CURSOR_TEXT)
    token: str = Field(description=POINT_TEXT)


class AuditEvent(BaseModel):
    """A recorded event with its recorded time and log position."""

    model_config = examples(
        {"event": EXAMPLE_EVENT, "recorded_at": "2026-01-05T09:30:00.412000Z", "position": 1041}
    )

    event: dict[str, Any] = Field(description="The event as recorded (contract section 2).")
    recorded_at: str = Field(description="When the log recorded it (RFC 3339).")
    position: int = Field(description="Offset of the event in the tenant's log partition.")


class AuditEventsPage(BaseModel):
    """A page of the audit timeline, oldest first."""

    model_config = examples(
        {
            "events": [
                {
                    "event": EXAMPLE_EVENT,
                    "recorded_at": "2026-01-05T09:30:00.412000Z",
                    "position": 1041,
                }
            ],
            "next_cursor": "WyJhdWRpdCIsMTc2NzIyNTYwMDAwMDAwMCwxMDQxXQ",
        }
    )

    events: list[AuditEvent] = Field(description="This page's events, oldest first.")
    next_cursor: str | None = Field(description=CURSOR_TEXT)


class AuditCheckResponse(BaseModel):
    """The answer contract section 3 gives at a past time."""

    model_config = examples(
        {
            "allowed": True,
            "reasons": [EXAMPLE_REASON_GROUP],
            "at": "2026-02-01T12:00:00Z",
            "replayed_events": 57,
        }
    )

    allowed: bool = Field(description="True when a grant live at that time conferred it.")
    reasons: list[ReasonModel] = Field(
        description="Every path that granted it then; empty when denied."
    )
    at: str = Field(description="The time asked about, in UTC (RFC 3339).")
    replayed_events: int = Field(description="Events folded to answer (after any snapshot)")


class TenantFreshness(BaseModel):
    """How current a tenant's views are."""

    model_config = examples(
        {
            "tenant": "acme",
            "token": EXAMPLE_POINT,
            "applied_offset": 1041,
            "applied_at": "2026-01-05T09:30:00.498000Z",
            "age_seconds": 0.42,
        }
    )

    tenant: str = Field(description="The tenant asked about.")
    token: str = Field(description="Consistency token of the newest applied event")
    applied_offset: int = Field(description="Log offset of the newest applied event (-1: none)")
    applied_at: str | None = Field(description="When the processor applied it")
    age_seconds: float | None = Field(description="Seconds since then")
    processor_progress_age_seconds: float | None = Field(
        default=None,
        description=(
            "Seconds since the processor last wrote any work (any tenant): a large age_seconds "
            "with a small value here is a busy processor, both large a stalled one"
        ),
    )


class ErrorBody(BaseModel):
    """What went wrong: a stable machine-readable code, a message for people, and details."""

    model_config = examples(
        {
            "code": "invalid_request",
            "message": "invalid input: principal",
            "details": [{"field": "principal", "rule": PRINCIPAL_RULE}],
        }
    )

    code: str = Field(description="Stable code, such as invalid_request or rate_limited.")
    message: str = Field(description="Human-readable explanation.")
    details: Any = Field(
        default=None,
        description="Code-specific detail: for invalid input, each field and its rule.",
    )


class ErrorResponse(BaseModel):
    """Every error answer."""

    model_config = examples(
        {
            "error": {
                "code": "forbidden",
                "message": "this token may not do that (wrong_tenant)",
                "details": None,
            }
        }
    )

    error: ErrorBody = Field(description="The error.")
