"""The backend services every adapter opens: channels, key change feed, request log shipper."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.api.context import Services
from adapters.api.principals import KeysGateway
from adapters.api.request_log import RequestLogShipper
from adapters.api.value_writer import ValueWriter
from m2x.runtime.grpc_client import open_channel
from m2x.storage.v1 import storage_pb2_grpc
from m2x.triggers.v1 import triggers_pb2_grpc


def health_check(channel: grpc.aio.Channel, service: str) -> Callable[[], Awaitable[bool]]:
    stub = health_pb2_grpc.HealthStub(channel)
    last: list[float | bool] = [0.0, False]

    async def check() -> bool:
        # /v2/status is public and unauthenticated: answer from a one-second memo so it
        # cannot be used to flood the services with health checks.
        if time.monotonic() - float(last[0]) > 1.0:
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
                last[1] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except Exception:
                last[1] = False
            last[0] = time.monotonic()
        return bool(last[1])

    return check


@contextlib.asynccontextmanager
async def open_services(
    keys_address: str,
    storage_address: str,
    rpc_timeout: float,
    principal_ttl: float,
    triggers_address: str = "",
) -> AsyncIterator[Services]:
    """Services for one adapter process, with the key change feed followed while it is open.

    Without a triggers address the trigger routes answer 503 (the service is not reachable).
    """
    keys_channel = open_channel(keys_address, default_timeout=rpc_timeout)
    storage_channel = open_channel(storage_address, default_timeout=rpc_timeout)
    triggers_channel = (
        open_channel(triggers_address, default_timeout=rpc_timeout) if triggers_address else None
    )
    keys = KeysGateway(keys_channel, ttl=principal_ttl)
    storage = storage_pb2_grpc.StorageServiceStub(storage_channel)
    request_log = RequestLogShipper(storage)
    request_log.start()
    watcher = asyncio.create_task(keys.watch(), name="key-change-feed")
    checks = {"keys": health_check(keys_channel, ""), "storage": health_check(storage_channel, "")}
    triggers = None
    if triggers_channel is not None:
        triggers = triggers_pb2_grpc.TriggersServiceStub(triggers_channel)
        checks["triggers"] = health_check(triggers_channel, "")
    try:
        yield Services(
            keys=keys,
            storage=storage,
            triggers=triggers,
            request_log=request_log,
            values=ValueWriter(storage),
            health_checks=checks,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await request_log.close()
        await keys_channel.close()
        await storage_channel.close()
        if triggers_channel is not None:
            await triggers_channel.close()
