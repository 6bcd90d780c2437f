"""Health probes: gRPC health Check for services, GET /v2/status for HTTP, CONNECT for MQTT."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from m2x.broker.probe import connack_code
from m2x.runtime.grpc_client import open_channel
from m2x.supervisor.child import Child, ComponentFailed
from m2x.supervisor.components import Component, Health

_POLL_INTERVAL = 0.1
_PROBE_TIMEOUT = 1.0


def connect_address(listen: str) -> str:
    """A host:port to connect to for an announced `listen` (a wildcard host means loopback)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _grpc_serving(channel: grpc.aio.Channel, service: str) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    # typeshed's HealthStub lists no methods; the generated class has one attribute per RPC.
    check: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ] = stub.Check  # type: ignore[attr-defined]
    try:
        answer = await check(health_pb2.HealthCheckRequest(service=service), timeout=_PROBE_TIMEOUT)
    except grpc.aio.AioRpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


async def _mqtt_answers(address: str) -> bool:
    # Any CONNACK will do: the broker component checked its adapters' credentials itself
    # before announcing ready, and only it knows them.
    host, _, port = address.rpartition(":")
    try:
        await connack_code(host, int(port))
    except (OSError, TimeoutError):
        return False
    return True


async def _always() -> bool:
    return True


async def _http_ok(session: aiohttp.ClientSession, address: str) -> bool:
    try:
        async with session.get(f"http://{address}/v2/status") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@contextlib.asynccontextmanager
async def _probe(
    component: Component, address: str
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A function answering "is it healthy now?", reusing one connection across polls."""
    if component.health is Health.GRPC:
        async with open_channel(address) as channel:
            yield lambda: _grpc_serving(channel, component.grpc_service)
    elif component.health is Health.MQTT:
        yield lambda: _mqtt_answers(address)
    elif component.health is Health.READY:
        yield _always
    else:
        timeout = aiohttp.ClientTimeout(total=_PROBE_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield lambda: _http_ok(session, address)


async def wait_healthy(component: Component, child: Child, address: str, within: float) -> None:
    """Poll until the component is healthy; ComponentFailed if it exits or times out first."""
    deadline = asyncio.get_running_loop().time() + within
    async with _probe(component, address) as healthy:
        while not await healthy():
            if child.exit_code is not None:
                await child.wait()
                raise ComponentFailed(
                    component.name, f"exited with code {child.exit_code}", child.tail
                )
            if asyncio.get_running_loop().time() >= deadline:
                raise ComponentFailed(
                    component.name, f"was not healthy within {within:g} s", child.tail
                )
            await asyncio.sleep(_POLL_INTERVAL)
