"""Opaque paging cursors: the last key of a page, encoded so clients treat it as a token."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from permstore.services.api.errors import ApiError


def encode_cursor(kind: str, key: list[Any]) -> str:
    """Opaque cursor for the item after key."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    kind: str, cursor: str | None, arity: int, item: type[str] | type[int] = str
) -> list[Any] | None:
    """The key a cursor names, or None for the first page; 400 when it is not ours.

    Every key part must be of type item (text, or a 64-bit integer), so that a forged cursor
    is refused here rather than failing later in a query.
    """
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(value, list) or len(value) != arity + 1 or value[0] != kind:
        raise _bad_cursor()
    key = value[1:]
    if not all(_is_key_part(part, item) for part in key):
        raise _bad_cursor()
    return key


def _is_key_part(part: Any, item: type[str] | type[int]) -> bool:
    if item is int:
        return type(part) is int and -(2**63) <= part < 2**63
    if not isinstance(part, str):
        return False
    try:
        part.encode()  # lone surrogates cannot be sent to the store
    except UnicodeEncodeError:
        return False
    return True


def _bad_cursor() -> ApiError:
    return ApiError(
        400,
        "invalid_cursor",
        "cursor is not one this endpoint issued",
        [{"field": "cursor", "rule": "must be a next_cursor returned by this endpoint"}],
    )
