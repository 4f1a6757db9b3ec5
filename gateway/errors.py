"""The API's errors and their stable codes; each renders as `{"error": {"code", "message"}}`.

The core raises these and the HTTP adapter renders them, so both share this one vocabulary: a
status is part of the contract, like the code. Codes never change once published; the table in
docs/api.md lists every member of `ErrorCode` (tests/unit/test_error_codes.py checks both ways).

    ApiError
    ├── BadRequest            400 bad_request, empty_body, malformed_json
    ├── Unauthorized          401 unauthorized, unknown_site, console_sign_in_required
    ├── Forbidden             403 identity_proof_*, identity_token_*, csrf_token_invalid, cross_origin_forbidden, …
    ├── NotFound              404 not_found, unknown_message, unknown_person, unknown_broadcast, …
    ├── MethodNotAllowed      405 method_not_allowed
    ├── Conflict              409 already_shown, email_in_use, template_name_taken, …
    │   └── InAppDisabled     409 in_app_disabled
    ├── PayloadTooLarge       413 body_too_large
    ├── RateLimited           429 rate_limited (with Retry-After)
    ├── Unprocessable         422 invalid_fields, expires_at_in_past, invalid_filter, …
    │   ├── IdempotencyKeyReused  422 idempotency_key_reused
    │   ├── InvalidFilter     422 invalid_filter
    │   └── TemplateError     422 invalid_template
    │       └── TemplateTooCostly  422 template_too_costly
    └── ServiceUnavailable    503 storage_unavailable, shutting_down (with Retry-After)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "ErrorCode",
    "EventRejection",
    "Forbidden",
    "IdempotencyKeyReused",
    "InAppDisabled",
    "InvalidFilter",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "TemplateError",
    "TemplateTooCostly",
    "Unauthorized",
    "Unprocessable",
]


class ErrorCode(StrEnum):
    """Every `error.code` the API can answer with."""

    # 400
    BAD_REQUEST = "bad_request"
    EMPTY_BODY = "empty_body"
    MALFORMED_JSON = "malformed_json"
    # 401
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_SITE = "unknown_site"
    CONSOLE_SIGN_IN_REQUIRED = "console_sign_in_required"
    # 403
    FORBIDDEN = "forbidden"
    IDENTITY_PROOF_REQUIRED = "identity_proof_required"
    IDENTITY_PROOF_FAILED = "identity_proof_failed"
    IDENTITY_HASH_NOT_ALLOWED = "identity_hash_not_allowed"
    IDENTITY_TOKEN_INVALID = "identity_token_invalid"
    IDENTITY_TOKEN_EXPIRED = "identity_token_expired"
    IDENTITY_TOKEN_LIFETIME_TOO_LONG = "identity_token_lifetime_too_long"
    CROSS_ORIGIN_FORBIDDEN = "cross_origin_forbidden"
    CSRF_TOKEN_INVALID = "csrf_token_invalid"
    # 404
    NOT_FOUND = "not_found"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_PERSON = "unknown_person"
    UNKNOWN_BROADCAST = "unknown_broadcast"
    UNKNOWN_TEMPLATE = "unknown_template"
    UNKNOWN_TRIGGER = "unknown_trigger"
    NO_DEMO_WORKSPACE = "no_demo_workspace"
    # 405
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # 409
    CONFLICT = "conflict"
    IN_APP_DISABLED = "in_app_disabled"
    ALREADY_SHOWN = "already_shown"
    ALREADY_EXPIRED = "already_expired"
    EMAIL_IN_USE = "email_in_use"
    TEMPLATE_NAME_TAKEN = "template_name_taken"
    BROADCAST_RECALLED = "broadcast_recalled"
    BROADCAST_EXPIRED = "broadcast_expired"
    # 413
    BODY_TOO_LARGE = "body_too_large"
    # 422
    INVALID_FIELDS = "invalid_fields"
    EXPIRES_AT_IN_PAST = "expires_at_in_past"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INVALID_FILTER = "invalid_filter"
    INVALID_TEMPLATE = "invalid_template"
    TEMPLATE_TOO_COSTLY = "template_too_costly"
    ATTRIBUTES_LIMIT = "attributes_limit"
    # 429
    RATE_LIMITED = "rate_limited"
    # 500 (tests assert it never happens) and other statuses aiohttp may raise
    INTERNAL_ERROR = "internal_error"
    HTTP_ERROR = "http_error"
    # 503
    STORAGE_UNAVAILABLE = "storage_unavailable"
    SHUTTING_DOWN = "shutting_down"


class EventRejection(StrEnum):
    """Why a device's report was not recorded: `rejected[].code` of POST /v1/events."""

    NOT_OFFERED_TO_DEVICE = "not_offered_to_device"
    UNKNOWN_MESSAGE = "unknown_message"


def _as_message(docstring: str) -> str:
    """A class's docstring in the messages' style: one clause, lower case, no closing period."""
    text = docstring.strip().rstrip(".")
    return text[:1].lower() + text[1:]


class ApiError(Exception):
    """Something went wrong."""

    status: int = 500
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str | None = None, *, code: ErrorCode | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or _as_message(self.__doc__ or "")
        if code is not None:
            self.code = code
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(ApiError):
    """The request is malformed; send a JSON object as the body."""

    status, code = 400, ErrorCode.BAD_REQUEST


class Unauthorized(ApiError):
    """No API key: send your workspace's key as `Authorization: Bearer <api key>`."""

    status, code = 401, ErrorCode.UNAUTHORIZED


class Forbidden(ApiError):
    """This request is not allowed with these credentials."""

    status, code = 403, ErrorCode.FORBIDDEN


class NotFound(ApiError):
    """Nothing is at this path; see docs/api.md for the endpoints."""

    status, code = 404, ErrorCode.NOT_FOUND


class MethodNotAllowed(ApiError):
    """This method is not allowed on this path."""

    status, code = 405, ErrorCode.METHOD_NOT_ALLOWED


class Conflict(ApiError):
    """The request conflicts with the current state."""

    status, code = 409, ErrorCode.CONFLICT


class PayloadTooLarge(ApiError):
    """The request body is too large."""

    status, code = 413, ErrorCode.BODY_TOO_LARGE


class Unprocessable(ApiError):
    """The JSON is valid but some fields are not."""

    status, code = 422, ErrorCode.INVALID_FIELDS


class RateLimited(ApiError):
    """Too many requests; wait the seconds `Retry-After` says, then retry."""

    status, code = 429, ErrorCode.RATE_LIMITED

    def __init__(self, what: str, *, retry_after_s: int) -> None:
        super().__init__(
            f"too many {what}; retry in {retry_after_s} s (rate limits: see docs/api.md)",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class ServiceUnavailable(ApiError):
    """The database is unavailable; retry shortly."""

    status, code = 503, ErrorCode.STORAGE_UNAVAILABLE


class InAppDisabled(Conflict):
    """In-app messaging is disabled for this workspace; enable it with PATCH /v1/workspace."""

    code = ErrorCode.IN_APP_DISABLED


class IdempotencyKeyReused(Unprocessable):
    """This `Idempotency-Key` was used for a different request."""

    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class InvalidFilter(Unprocessable):
    """An attribute filter is not valid; see docs/api.md for its grammar."""

    code = ErrorCode.INVALID_FILTER


class TemplateError(Unprocessable):
    """A template in the content does not parse or cannot render."""

    code = ErrorCode.INVALID_TEMPLATE


class TemplateTooCostly(TemplateError):
    """A template went over its render budget (loop iterations, output or time); simplify it."""

    code = ErrorCode.TEMPLATE_TOO_COSTLY
