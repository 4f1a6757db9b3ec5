"""The API's errors; each renders as `{"error": {"code", "message"}}` with its status.

    ApiError
    ├── BadRequest            400 malformed_json, …
    ├── Unauthorized          401 unauthorized
    ├── Forbidden             403 forbidden, identity_proof_failed
    ├── Unauthorized          401 unknown_site (a wrong site id is wrong credentials)
    ├── NotFound              404 not_found, unknown_message, unknown_person, unknown_broadcast
    ├── MethodNotAllowed      405 method_not_allowed
    ├── Conflict              409 already_shown, email_in_use, …
    │   └── InAppDisabled     409 in_app_disabled
    ├── PayloadTooLarge       413 body_too_large
    ├── Unprocessable         422 invalid_fields, expires_at_in_past, …
    │   └── IdempotencyKeyReused  422 idempotency_key_reused
    └── ServiceUnavailable    503 storage_unavailable (with Retry-After)
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "InAppDisabled",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
]


class ApiError(Exception):
    """Something went wrong."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        if code is not None:
            self.code = code
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(ApiError):
    """The request is malformed; send a JSON object."""

    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    """Missing or wrong API key; send `Authorization: Bearer <api key>`."""

    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    """Not allowed."""

    status, code = 403, "forbidden"


class NotFound(ApiError):
    """No such resource."""

    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    """This method is not allowed on this path."""

    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    """The request conflicts with the current state."""

    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    """The request body is too large."""

    status, code = 413, "body_too_large"


class Unprocessable(ApiError):
    """The JSON is valid but some fields are not."""

    status, code = 422, "invalid_fields"


class ServiceUnavailable(ApiError):
    """The database is unavailable; retry shortly."""

    status, code = 503, "storage_unavailable"



class InAppDisabled(Conflict):
    """In-app messaging is disabled for this workspace; enable it with PATCH /v1/workspace."""

    code = "in_app_disabled"


class IdempotencyKeyReused(Unprocessable):
    """This `Idempotency-Key` was used for a different request."""

    code = "idempotency_key_reused"
