"""Request and response models of the HTTP API (contract section 4)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.events import Action, Principal, Resource, Tenant


def _no_wildcard(value: str) -> str:
    if "*" in value:
        raise ValueError("a check names a concrete resource, not a pattern")
    return value


CheckResource = Annotated[str, AfterValidator(_no_wildcard), Field(max_length=2200)]


class Strict(BaseModel):
    """Refuse unknown fields so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class Consistency(Strict):
    """Read at least as fresh as a token returned by an earlier write or read."""

    at_least: str = Field(
        min_length=1, max_length=128, description="A consistency token from this service."
    )


class CheckRequest(Strict):
    """May principal perform action on resource?"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "principal": "user:alice",
                    "resource": "doc:acme/eng/spec-1",
                    "action": "read",
                }
            ]
        },
    )

    tenant: Tenant
    principal: Principal
    resource: Annotated[Resource, AfterValidator(_no_wildcard)]
    action: Action
    consistency: Consistency | None = None


class ReasonModel(BaseModel):
    """One path that grants the permission."""

    kind: str = Field(description="direct, or group when held through group membership")
    grant: dict[str, str] = Field(description="The grant: principal, resource, permission")
    via_group: str | None = None
    via_role: str | None = None
    pattern: str
    expires_at: str | None = None
    description: str


class CheckResponse(BaseModel):
    """The decision, the token of the view used, and each path that grants."""

    allowed: bool
    token: str
    reasons: list[ReasonModel]


class BatchItem(Strict):
    """One check of a batch."""

    principal: Principal
    resource: Annotated[Resource, AfterValidator(_no_wildcard)]
    action: Action


class BatchCheckRequest(Strict):
    """Up to 1000 checks of one tenant, answered in request order."""

    tenant: Tenant
    checks: Annotated[list[BatchItem], Field(min_length=1, max_length=1000)]
    consistency: Consistency | None = None


class BatchResult(BaseModel):
    """One answer of a batch."""

    allowed: bool
    reasons: list[ReasonModel]


class BatchCheckResponse(BaseModel):
    """Answers in request order."""

    results: list[BatchResult]
    token: str


class EventsAccepted(BaseModel):
    """Every event was acknowledged by Kafka."""

    accepted: int
    token: str


class PermissionItem(BaseModel):
    """An effective (resource pattern, action) a principal holds."""

    resource: str
    action: str
    reasons: list[ReasonModel]
    expires_at: str | None


class PermissionsPage(BaseModel):
    """A page of a principal's effective permissions."""

    permissions: list[PermissionItem]
    next_cursor: str | None
    token: str


class PrincipalItem(BaseModel):
    """A user or service that may act on the resource."""

    principal: str
    action: str
    reasons: list[ReasonModel]


class PrincipalsPage(BaseModel):
    """A page of who-can."""

    principals: list[PrincipalItem]
    next_cursor: str | None
    token: str


class AuditEvent(BaseModel):
    """A recorded event with its recorded time and log position."""

    event: dict[str, Any]
    recorded_at: str
    position: int


class AuditEventsPage(BaseModel):
    """A page of the audit timeline, oldest first."""

    events: list[AuditEvent]
    next_cursor: str | None


class AuditCheckResponse(BaseModel):
    """The answer contract section 3 gives at a past time."""

    allowed: bool
    reasons: list[ReasonModel]
    at: str
    replayed_events: int = Field(description="Events folded to answer (after any snapshot)")


class TenantFreshness(BaseModel):
    """How current a tenant's views are."""

    tenant: str
    token: str = Field(description="Consistency token of the newest applied event")
    applied_offset: int = Field(description="Log offset of the newest applied event (-1: none)")
    applied_at: str | None = Field(description="When the processor applied it")
    age_seconds: float | None = Field(description="Seconds since then")


class ErrorBody(BaseModel):
    """Error detail."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error answer."""

    error: ErrorBody
