"""Calling backend services from the API layer: failures become domain errors."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from m2x.runtime.errors import DomainError, Unavailable
from m2x.runtime.grpc_status import to_domain_error

logger = logging.getLogger(__name__)


async def call(rpc: Any, request: Any) -> Any:
    """One RPC; a gRPC error becomes the domain error it carries, or Unavailable."""
    try:
        return await rpc(request)
    except grpc.RpcError as exc:
        raise _translated(exc) from None


def _translated(exc: grpc.RpcError) -> DomainError:
    """The domain error a failed call carries; transport trouble is 503, anything else 500."""
    error = to_domain_error(exc)
    if error is not None:
        return error
    logger.error("backend call failed: %s %s", exc.code(), exc.details())
    if exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return Unavailable("backend service busy")
    return DomainError("backend error")  # answered as 500 by the error table


async def read_stream(rpc: Any, request: Any) -> list[Any]:
    """Every message of a server-streaming RPC, with the same error mapping as `call`."""
    try:
        return [message async for message in rpc(request)]
    except grpc.RpcError as exc:
        raise _translated(exc) from None
