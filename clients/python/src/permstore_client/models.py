"""Typed answers of the permstore API (contract sections 4, 6 and 7); unknown fields are kept."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    # A newer server may add fields (the contract welcomes it): keep them, never fail on them.
    model_config = ConfigDict(extra="allow", frozen=True)


class GrantRef(_Answer):
    """A grant: (principal, resource pattern, permission)."""

    principal: str
    resource: str
    permission: str
    expires_at: str | None = None


class Reason(_Answer):
    """One path that grants: the grant and how it reaches the principal."""

    kind: str
    grant: GrantRef
    via_group: str | None = None
    via_chain: list[str] | None = None
    via_role: str | None = None
    pattern: str
    expires_at: str | None = None
    description: str = ""


class Decision(_Answer):
    """An answer to one check: allowed, every path that grants it, the view's token."""

    allowed: bool
    reasons: list[Reason] = Field(default_factory=list)
    token: str | None = None

    def __bool__(self) -> bool:
        """A decision is truthy when it allows."""
        return self.allowed


class BatchAnswer(_Answer):
    """One answer of a batch check."""

    allowed: bool
    reasons: list[Reason] = Field(default_factory=list)


class BatchDecision(_Answer):
    """Answers of a batch check, in request order, and the view's token."""

    results: list[BatchAnswer]
    token: str


class WriteResult(_Answer):
    """Events accepted into the log, and the token naming the point after them."""

    accepted: int
    token: str


class PermissionItem(_Answer):
    """An effective (resource pattern, action) a principal holds."""

    resource: str
    action: str
    reasons: list[Reason] = Field(default_factory=list)
    expires_at: str | None = None


class PrincipalItem(_Answer):
    """A user or service that may act on a resource."""

    principal: str
    action: str
    reasons: list[Reason] = Field(default_factory=list)


class AuditEvent(_Answer):
    """A recorded event, when the log recorded it and its position."""

    event: dict[str, Any]
    recorded_at: str
    position: int


class AuditDecision(_Answer):
    """The answer at a past time."""

    allowed: bool
    reasons: list[Reason] = Field(default_factory=list)
    at: str
    replayed_events: int | None = None


class Freshness(_Answer):
    """How current a tenant's views are."""

    tenant: str
    token: str
    applied_offset: int
    applied_at: str | None = None
    age_seconds: float | None = None


class ChangedPermission(_Answer):
    """One (resource pattern, action) gained or lost in a change."""

    resource: str
    action: str
    expires_at: str | None = None


class Change(_Answer):
    """A principal's effective set changed by one event (contract section 6)."""

    tenant: str
    principal: str
    position: str
    recorded_at: str
    cause: str
    added: list[ChangedPermission] = Field(default_factory=list)
    removed: list[ChangedPermission] = Field(default_factory=list)


class ChangesPage(_Answer):
    """Changes after a token, oldest first, and the token to follow."""

    changes: list[Change]
    next: str


class Membership(_Answer):
    """A membership edge."""

    group: str
    member: str


class RoleAction(_Answer):
    """One action of a role."""

    role: str
    action: str


class Recommendation(_Answer):
    """The event that would remove an unused access (without event_id, actor, occurred_at)."""

    event: dict[str, Any]


class Finding(_Answer):
    """Something that existed and was not used (contract section 7)."""

    kind: str
    grant: GrantRef | None = None
    membership: Membership | None = None
    role_action: RoleAction | None = None
    granted_at: str | None = None
    granted_by: str | None = None
    last_used_at: str | None = None
    uses: int = 0
    recommendation: Recommendation | None = None


class UsageItem(_Answer):
    """How a principal used one (resource pattern, action)."""

    resource: str
    action: str
    last_used_at: str | None = None
    uses: int = 0


T = TypeVar("T", bound=BaseModel)


class Page(_Answer, Generic[T]):
    """One page of a listing: its items, the cursor of the next page (None: last), the token."""

    items: list[T]
    next_cursor: str | None = None
    token: str | None = None
    as_of: str | None = None
