"""The one table between domain errors and gRPC statuses, in both directions.

Servers call `abort_with` (via the error interceptor) and clients call `to_domain_error`, so a
field-level validation error raised in a service reaches the API layer as the same
ValidationFailed, carried in standard google.rpc details (BadRequest, ResourceInfo, ErrorInfo).
"""

from __future__ import annotations

from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from m2x.runtime.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)

ERROR_DOMAIN = "m2x"

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Detail = TypeVar("_Detail", bound=Message)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: DomainError) -> status_pb2.Status:
    """Domain error -> google.rpc.Status with structured details."""
    if isinstance(error, ValidationFailed):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=code)
                for field, codes in error.fields.items()
                for code in codes
            ]
        )
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[_pack(bad)]
        )
    if isinstance(error, NotFound):
        info = error_details_pb2.ResourceInfo(
            resource_type=error.resource, resource_name=error.name
        )
        return status_pb2.Status(code=code_pb2.NOT_FOUND, message=str(error), details=[_pack(info)])
    if isinstance(error, PermissionDenied | Conflict):
        code = (
            code_pb2.PERMISSION_DENIED
            if isinstance(error, PermissionDenied)
            else code_pb2.FAILED_PRECONDITION
        )
        error_info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
        return status_pb2.Status(code=code, message=str(error), details=[_pack(error_info)])
    if isinstance(error, Unauthenticated):
        return status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message=str(error))
    if isinstance(error, Unavailable):
        return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=str(error))
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")


def to_domain_error(error: grpc.RpcError) -> DomainError | None:
    """gRPC error from a call -> the domain error it carries, or None for transport failures."""
    code = error.code() if hasattr(error, "code") else None
    # grpc.aio's AioRpcError has the trailing metadata from_call reads, but is no grpc.Call.
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    message = error.details() if hasattr(error, "details") else ""
    if code is None:
        return None
    details = list(status.details) if status is not None else []
    return _domain_error(code.value[0], message or "", details)


def status_to_domain_error(status: status_pb2.Status) -> DomainError:
    """google.rpc.Status (e.g. one result of a batch call) -> its domain error."""
    error = _domain_error(status.code, status.message, list(status.details))
    return error if error is not None else DomainError(status.message or "backend error")


def _domain_error(code: int, message: str, details: list[any_pb2.Any]) -> DomainError | None:
    def detail(kind: type[_Detail]) -> _Detail | None:
        for packed in details:
            candidate = kind()
            if packed.Unpack(candidate):  # False (and nothing parsed) for another type
                return candidate
        return None

    if code == code_pb2.INVALID_ARGUMENT:
        bad = detail(error_details_pb2.BadRequest)
        fields: dict[str, list[str]] = {}
        for violation in getattr(bad, "field_violations", []):
            fields.setdefault(violation.field, []).append(violation.description)
        return ValidationFailed(fields)
    if code == code_pb2.NOT_FOUND:
        info = detail(error_details_pb2.ResourceInfo)
        return NotFound(
            getattr(info, "resource_type", "Resource") or "Resource",
            getattr(info, "resource_name", ""),
        )
    if code in (code_pb2.PERMISSION_DENIED, code_pb2.FAILED_PRECONDITION):
        error_info = detail(error_details_pb2.ErrorInfo)
        reason = getattr(error_info, "reason", "") or "denied"
        cls = PermissionDenied if code == code_pb2.PERMISSION_DENIED else Conflict
        return cls(reason, message)
    if code == code_pb2.UNAUTHENTICATED:
        return Unauthenticated(message)
    if code in (code_pb2.UNAVAILABLE, code_pb2.DEADLINE_EXCEEDED):
        return Unavailable(message or "backend unavailable")
    return None


async def abort_with(
    context: grpc.aio.ServicerContext[_Req, _Resp], error: DomainError
) -> NoReturn:
    """Abort the current RPC with the status for `error` (raises grpc.aio.AbortError)."""
    status = rpc_status.to_status(to_status(error))
    await context.abort_with_status(status)
