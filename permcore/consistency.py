"""Consistency tokens: opaque strings naming a point in one tenant's log."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

_PREFIX = "ps1."

PROGRESS_KEY = "_processor"
"""Position row the processor stamps when it writes a piece of work (not a valid tenant name,
so no tenant's row can collide): readers tell a busy processor from a stalled one by it."""


class MalformedTokenError(ValueError):
    """A consistency token that this service did not issue, or for another tenant."""


@dataclass(frozen=True, slots=True, order=True)
class LogPoint:
    """A position in a tenant's partition: every event at or before offset is included."""

    partition: int
    offset: int

    def covers(self, other: LogPoint) -> bool:
        """True when this point has applied at least other (same tenant, same partition)."""
        return other.offset < 0 or (
            self.partition == other.partition and self.offset >= other.offset
        )


def _tenant_tag(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:8]


def encode_token(tenant: str, point: LogPoint) -> str:
    """Opaque token naming a point of a tenant's log."""
    raw = f"{_tenant_tag(tenant)}:{point.partition}:{point.offset}".encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(tenant: str, token: str) -> LogPoint:
    """Parse a token; raises MalformedTokenError when it is not ours or names another tenant.

    A change-stream cursor inside an event names that event's point: its view rows are written.
    """
    return decode_change_point(tenant, token)[0]


def encode_change_cursor(tenant: str, point: LogPoint, seq: int) -> str:
    """Token after the change `seq` (0-based, principal order) of the event at point."""
    raw = f"{_tenant_tag(tenant)}:{point.partition}:{point.offset}:{seq}".encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_change_point(tenant: str, token: str) -> tuple[LogPoint, int | None]:
    """(point, seq) of a token or change cursor; seq None covers the whole event at point."""
    if not token.startswith(_PREFIX) or len(token) > 128:
        raise MalformedTokenError("consistency token is not one this service issued")
    body = token[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        tag, partition, offset, *rest = raw.split(":")
        if len(rest) > 1:
            raise ValueError(raw)
        point = LogPoint(int(partition), int(offset))
        seq = int(rest[0]) if rest else None
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise MalformedTokenError("consistency token is not one this service issued") from exc
    if tag != _tenant_tag(tenant):
        raise MalformedTokenError("consistency token belongs to another tenant")
    if point.partition < -1 or point.offset < -1 or (seq is not None and seq < 0):
        raise MalformedTokenError("consistency token is not one this service issued")
    return point, seq


START = LogPoint(-1, -1)
"""The point before any event."""
