"""Exceptions per error code of the permstore API (contract section 4)."""

from __future__ import annotations

from typing import Any


class PermstoreError(Exception):
    """An answer other than 2xx: the HTTP status, the stable code, the message and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after


class InvalidRequestError(PermstoreError):
    """400/422: a field broke a rule; details name each field and rule."""


class InvalidTokenError(InvalidRequestError):
    """A consistency token this service did not issue, or of another tenant."""


class InvalidCursorError(InvalidRequestError):
    """A paging cursor this service did not issue."""


class UnauthenticatedError(PermstoreError):
    """401: no bearer token, or one the service does not accept."""


class ForbiddenError(PermstoreError):
    """403: the token's tenant or scopes do not allow the call."""


class NotFoundError(PermstoreError):
    """404: no such endpoint (an older server) or resource."""


class ConflictError(PermstoreError):
    """409: the request conflicts with the current state."""


class TooLargeError(PermstoreError):
    """413: the request body is over the server's limit."""


class RateLimitedError(PermstoreError):
    """429: too many requests; retried with backoff before it is raised."""


class UnavailableError(PermstoreError):
    """503: the store or broker is down; retried with backoff before it is raised."""


class ConsistencyTimeoutError(UnavailableError):
    """503: the view did not reach the requested token in time; details carry `reached`."""


class TransportError(PermstoreError):
    """The server could not be reached or did not answer in time (status 0)."""


class TransportTimeoutError(TransportError):
    """The server was reached (or being reached) but did not answer in time (status 0)."""


_BY_CODE: dict[str, type[PermstoreError]] = {
    "invalid_request": InvalidRequestError,
    "invalid_token": InvalidTokenError,
    "invalid_cursor": InvalidCursorError,
    "unauthenticated": UnauthenticatedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "too_large": TooLargeError,
    "rate_limited": RateLimitedError,
    "unavailable": UnavailableError,
    "consistency_timeout": ConsistencyTimeoutError,
}
_BY_STATUS: dict[int, type[PermstoreError]] = {
    400: InvalidRequestError,
    401: UnauthenticatedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_for(
    status: int, code: str, message: str, details: Any = None, retry_after: float | None = None
) -> PermstoreError:
    """The most specific exception for an error answer: by code, else by status."""
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or PermstoreError
    return kind(status, code, message, details, retry_after)
