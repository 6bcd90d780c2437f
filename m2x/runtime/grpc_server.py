"""gRPC server life cycle shared by every service: build, health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from m2x.runtime.interceptors import ServerInterceptor

logger = logging.getLogger(__name__)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
# The context a servicer method gets, as the generated servicer base classes (mypy-protobuf,
# asyncio only) declare it: its second argument is what the method returns.
UnaryContext: TypeAlias = grpc.aio.ServicerContext[_Req, Awaitable[_Resp]]
StreamContext: TypeAlias = grpc.aio.ServicerContext[_Req, AsyncIterator[_Resp]]


@dataclass(slots=True)
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: Sequence[str]

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let calls in flight finish for up to `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(
    component: str,
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    reflection_enabled: bool = False,
) -> GrpcServer:
    """Start a server on `listen` (host:port; port 0 = any free one), with health checks."""
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(component)],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ],
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME]
    if reflection_enabled:
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, port, health_servicer, service_names)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (the caller then shuts down gracefully)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
