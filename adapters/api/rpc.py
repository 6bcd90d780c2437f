"""Calling backend services from the API layer: failures become domain errors."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from m2x.runtime.errors import Unavailable
from m2x.runtime.grpc_status import to_domain_error

logger = logging.getLogger(__name__)


async def call(rpc: Any, request: Any) -> Any:
    """One RPC; a gRPC error becomes the domain error it carries, or Unavailable."""
    try:
        return await rpc(request)
    except grpc.RpcError as exc:
        error = to_domain_error(exc)
        if error is None:
            logger.error("backend call failed: %s %s", exc.code(), exc.details())
            raise Unavailable("backend service unavailable") from None
        raise error from None


async def read_stream(rpc: Any, request: Any) -> list[Any]:
    """Every message of a server-streaming RPC, with the same error mapping as `call`."""
    try:
        return [message async for message in rpc(request)]
    except grpc.RpcError as exc:
        error = to_domain_error(exc)
        if error is None:
            logger.error("backend stream failed: %s %s", exc.code(), exc.details())
            raise Unavailable("backend service unavailable") from None
        raise error from None
