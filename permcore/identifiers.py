"""Grammar of tenants, principals, resources, patterns, actions and permissions (contract s.1)."""

from __future__ import annotations

import re
from typing import Final

TENANT_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PRINCIPAL_KINDS: Final = ("user", "service", "group")
_ID = r"[A-Za-z0-9._@-]{1,128}"
PRINCIPAL_RE: Final = re.compile(rf"(user|service|group):{_ID}")
GROUP_RE: Final = re.compile(rf"group:{_ID}")
_TYPE = r"[a-z][a-z0-9_-]{0,31}"
_PATH = rf"{_ID}(?:/{_ID}){{0,15}}"
RESOURCE_RE: Final = re.compile(rf"{_TYPE}:{_PATH}")
PATTERN_RE: Final = re.compile(rf"{_TYPE}:(?:\*|{_PATH}(?:/\*)?)")
ACTION_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
ROLE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PERMISSION_RE: Final = re.compile(r"(?:role:)?[a-z][a-z0-9_.-]{0,63}")

ROLE_PREFIX: Final = "role:"
MAX_PATH_SEGMENTS: Final = 16

TENANT_RULE: Final = "tenant must match [a-z0-9][a-z0-9_-]{0,62}"
PRINCIPAL_RULE: Final = (
    "principal must be user:<id>, service:<id> or group:<id> with id [A-Za-z0-9._@-]{1,128}"
)
GROUP_RULE: Final = "group must be group:<id> with id [A-Za-z0-9._@-]{1,128}"
RESOURCE_RULE: Final = (
    "resource must be <type>:<path>, type [a-z][a-z0-9_-]{0,31}, path 1-16 segments "
    "of [A-Za-z0-9._@-]{1,128} joined by '/'"
)
PATTERN_RULE: Final = (
    "resource pattern must be a resource, <type>:<path>/* or <type>:* (contract section 1)"
)
ACTION_RULE: Final = "action must match [a-z][a-z0-9_.-]{0,63}"
PERMISSION_RULE: Final = (
    "permission must be an action or role:<name> with name [a-z][a-z0-9_.-]{0,63}"
)
ROLE_RULE: Final = "role name must match [a-z][a-z0-9_.-]{0,63}"


def is_tenant(value: str) -> bool:
    """True when value is a valid tenant id."""
    return TENANT_RE.fullmatch(value) is not None


def is_principal(value: str) -> bool:
    """True when value is a valid principal (user, service or group)."""
    return PRINCIPAL_RE.fullmatch(value) is not None


def is_group(value: str) -> bool:
    """True when value is a valid group principal."""
    return GROUP_RE.fullmatch(value) is not None


def is_resource(value: str) -> bool:
    """True when value is a concrete resource (no wildcard)."""
    return RESOURCE_RE.fullmatch(value) is not None


def is_pattern(value: str) -> bool:
    """True when value is a resource or a wildcard resource pattern."""
    return PATTERN_RE.fullmatch(value) is not None


def is_action(value: str) -> bool:
    """True when value is a valid action name."""
    return ACTION_RE.fullmatch(value) is not None


def is_role_name(value: str) -> bool:
    """True when value is a valid role name."""
    return ROLE_NAME_RE.fullmatch(value) is not None


def is_permission(value: str) -> bool:
    """True when value is an action or role:<name>."""
    return PERMISSION_RE.fullmatch(value) is not None


def role_of(permission: str) -> str | None:
    """The role name of a `role:<name>` permission, else None."""
    return permission[len(ROLE_PREFIX) :] if permission.startswith(ROLE_PREFIX) else None


def is_member_principal(principal: str) -> bool:
    """True for users and services, the principals that who-can lists (never groups)."""
    return principal.startswith(("user:", "service:"))


def patterns_matching(resource: str) -> list[str]:
    """Every pattern that matches a concrete resource: itself, each ancestor `T:p/*`, `T:*`.

    A check reads exactly these rows, so its cost is bounded by the path depth (at most 17).
    """
    rtype, _, path = resource.partition(":")
    segments = path.split("/")
    patterns = [resource]
    for depth in range(len(segments) - 1, 0, -1):
        patterns.append(f"{rtype}:{'/'.join(segments[:depth])}/*")
    patterns.append(f"{rtype}:*")
    return patterns


def pattern_matches(pattern: str, resource: str) -> bool:
    """True when a grant's resource pattern covers a concrete resource (contract s.3 rule 2)."""
    return pattern in patterns_matching(resource)
