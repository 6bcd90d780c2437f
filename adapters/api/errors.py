"""The one table from domain errors to M2X error statuses and bodies (spec §1.13)."""

from __future__ import annotations

from adapters.api.messages import ApiResponse
from m2x.runtime.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)

DOCS = "https://m2x.att.com/developer/documentation"
NOT_FOUND_DESCRIPTION = (
    "The resource you requested could not be found. Please verify that the correct resource "
    f"path was provided, or refer to {DOCS} for complete API documentation."
)


class ApiError(DomainError):
    """An error of the request itself, raised by the API layer or a transport."""

    status = 400
    title = "Bad Request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class BadRequest(ApiError):
    status, title = 400, "Bad Request"


class MethodNotAllowed(ApiError):
    status, title = 405, "Method Not Allowed"

    def __init__(self, description: str, allowed: list[str]) -> None:
        super().__init__(description)
        self.allowed = allowed


class PayloadTooLarge(ApiError):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported Media Type"


class ExpectationFailed(ApiError):
    status, title = 417, "Expectation Failed"


class RateLimited(ApiError):
    status, title = 429, "Too Many Requests"


# PermissionDenied reasons with their public message and description.
FORBIDDEN: dict[str, tuple[str, str]] = {
    "KEY_EXPIRED": ("Your API key has expired", "Regenerate the key or use another one."),
    "ACCOUNT_NOT_ACTIVE": (
        "Account Not Active",
        "Your account has not been activated yet. If you need to re-send the activation "
        "email, please visit https://m2x.att.com/activation-required",
    ),
    "ORIGIN_NOT_ALLOWED": (
        "Forbidden",
        "Your API key may not be used from this IP address.",
    ),
    "METHOD_NOT_PERMITTED": (
        "Forbidden",
        "Your API key is not allowed to use this HTTP method.",
    ),
    "MASTER_KEY_REQUIRED": (
        "Forbidden",
        "This resource requires a Master API key.",
    ),
    "OUT_OF_SCOPE": (
        "Forbidden",
        "Your API key is not allowed to access this resource.",
    ),
    "DEVICE_DISABLED": (
        "Forbidden",
        "The device is disabled; a Master API key can enable it again.",
    ),
    "PRIMARY_KEY_IMMUTABLE": (
        "Forbidden",
        "Primary keys cannot be edited or deleted, only regenerated.",
    ),
}


def error_response(error: DomainError) -> ApiResponse:
    """The public status and body of a domain error."""
    if isinstance(error, ValidationFailed):
        return ApiResponse(422, {"message": "Validation Failed", "errors": error.fields})
    if isinstance(error, NotFound):
        title = f"{error.resource} Not Found".strip()
        return ApiResponse(404, {"message": title, "description": NOT_FOUND_DESCRIPTION})
    if isinstance(error, PermissionDenied):
        message, description = FORBIDDEN.get(error.reason, ("Forbidden", error.message))
        return ApiResponse(403, {"message": message, "description": description})
    if isinstance(error, Unauthenticated):
        return ApiResponse(401, {
            "message": "Unauthorized",
            "description": "No valid API key was provided. Send it in the X-M2X-KEY header "
            f"or as 'Authorization: Bearer <key>'; see {DOCS}.",
        })  # fmt: skip
    if isinstance(error, RateLimited):
        return ApiResponse(429, {"message": error.description})
    if isinstance(error, MethodNotAllowed):
        body = {"message": error.title, "description": error.description}
        return ApiResponse(405, body, headers={"Allow": ", ".join(error.allowed)})
    if isinstance(error, ApiError):
        return ApiResponse(error.status, {"message": error.title, "description": error.description})
    if isinstance(error, Conflict):
        return ApiResponse(409, {"message": "Conflict", "description": error.message})
    if isinstance(error, Unavailable):
        return ApiResponse(503, {
            "message": "Service Unavailable",
            "description": "A backend service is not reachable right now; retry shortly.",
        })  # fmt: skip
    return internal_error()


def internal_error() -> ApiResponse:
    return ApiResponse(500, {
        "message": "Internal Server Error",
        "description": "Something went wrong on our side; it has been logged.",
    })  # fmt: skip
