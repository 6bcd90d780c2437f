"""Domain errors: what services raise and what the API layer turns into public error bodies.

Pure Python (no grpc import) so domain modules can raise them; m2x.runtime.grpc_status maps
them to and from gRPC statuses, adapters.api.errors maps them to HTTP statuses and bodies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    """Base of every error a service reports on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message


class NotFound(DomainError):
    """A named resource does not exist (or belongs to another account)."""

    def __init__(self, resource: str, name: str = "") -> None:
        super().__init__(f"{resource} {name} not found".replace("  ", " "))
        self.resource = resource
        self.name = name


class ValidationFailed(DomainError):
    """Input fields are invalid; `fields` maps a field to its M2X code words."""

    def __init__(self, fields: Mapping[str, Sequence[str]]) -> None:
        super().__init__(
            "validation failed: " + ", ".join(f"{k}={list(v)}" for k, v in fields.items())
        )
        self.fields = {k: list(v) for k, v in fields.items()}


class PermissionDenied(DomainError):
    """The caller may not do this; `reason` is a stable machine-readable word."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class Unauthenticated(DomainError):
    """The credential is unknown."""


class Conflict(DomainError):
    """The request contradicts the resource's current state."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class Unavailable(DomainError):
    """A dependency is down; retrying later may work."""
