"""The broker and MQTT adapters as real processes beside the stack, and MQTT device clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from tests.support.processes import Component, start_component
from tests.support.stack import NO_LIMITS, Stack, start_stack

V5 = aiomqtt.ProtocolVersion.V5
V311 = aiomqtt.ProtocolVersion.V311
V31 = aiomqtt.ProtocolVersion.V31
ANSWER_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MqttStack:
    stack: Stack
    broker: Component
    device_port: int
    workdir: Path
    adapters: list[Component] = field(default_factory=list)

    async def start_adapter(self, *args: str) -> Component:
        adapter = await start_component(
            "adapters.mqtt", f"mqtt{len(self.adapters)}", self.workdir,
            "--data-dir", str(self.workdir), "--broker-url", f"mqtt://{self.broker.listen}",
            "--keys-address", self.stack.keys.listen,
            "--storage-address", self.stack.storage.listen,
            *(("--triggers-address", self.stack.triggers.listen) if self.stack.triggers else ()),
            "--public-url", self.stack.url, *NO_LIMITS, *args,
        )  # fmt: skip
        self.adapters.append(adapter)
        return adapter

    async def restart_broker(self) -> None:
        await self.broker.stop()
        self.broker = await start_broker(self.workdir, self.device_port, self.broker.listen)

    @contextlib.asynccontextmanager
    async def device(
        self, key: str, protocol: aiomqtt.ProtocolVersion = V5
    ) -> AsyncIterator[Device]:
        async with device_session(self.device_port, key, protocol) as session:
            yield session


async def start_broker(workdir: Path, device_port: int, listen: str = "127.0.0.1:0") -> Component:
    return await start_component(
        "m2x.broker", "broker", workdir, "--data-dir", str(workdir), "--listen", listen,
        "--mqtt-port", str(device_port), "--mqtt-host", "127.0.0.1",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def start_mqtt_stack(workdir: Path, adapters: int = 1) -> AsyncIterator[MqttStack]:
    """Keys, storage, HTTP, a broker and `adapters` MQTT adapters, rate limits out of the way."""
    async with start_stack(workdir, *NO_LIMITS) as stack:
        port = free_port()
        running = MqttStack(stack, await start_broker(workdir, port), port, workdir)
        try:
            for _ in range(adapters):
                await running.start_adapter()
            yield running
        finally:
            for adapter in running.adapters:
                await adapter.stop()
            await running.broker.stop()


class Device:
    """One device's MQTT session: requests out with its key, everything it receives kept."""

    def __init__(self, client: aiomqtt.Client, key: str) -> None:
        self.client = client
        self.key = key
        self.received: list[tuple[str, Any]] = []  # (topic, decoded payload) in arrival order
        self._by_id: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    async def subscribe(self, *topics: str) -> None:
        for topic in topics:
            await self.client.subscribe(topic)

    async def read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            try:
                decoded = orjson.loads(payload)  # type: ignore[arg-type]
            except orjson.JSONDecodeError:
                decoded = payload
            self.received.append((str(message.topic), decoded))
            if isinstance(decoded, dict) and "status" in decoded and "id" in decoded:
                self._by_id[decoded["id"]].append(decoded)
            async with self._arrived:
                self._arrived.notify_all()

    async def publish(self, payload: bytes | str, topic: str | None = None, **kwargs: Any) -> None:
        await self.client.publish(topic or f"m2x/{self.key}/requests", payload, **kwargs)

    async def send(self, method: str, resource: str, body: Any = None, **extra: Any) -> Any:
        """Publish a request; its id."""
        request_id = extra.pop("id", None) or uuid.uuid4().hex
        envelope = {"id": request_id, "method": method, "resource": resource, **extra}
        if body is not None:
            envelope["body"] = body
        await self.publish(orjson.dumps(envelope))
        return request_id

    async def response(self, request_id: Any, within: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: bool(self._by_id.get(request_id)))
        return self._by_id[request_id][0]

    async def request(
        self, method: str, resource: str, body: Any = None, within: float = ANSWER_TIMEOUT,
        **extra: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """`{"id", "status", "body"}` of one request (`extra`: more envelope fields)."""
        return await self.response(await self.send(method, resource, body, **extra), within)

    def responses_to(self, request_id: Any) -> list[dict[str, Any]]:
        return list(self._by_id.get(request_id, []))

    async def wait_for(self, check: Any, within: float = ANSWER_TIMEOUT) -> None:
        """Until `check()` is true of what was received."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(check)


@contextlib.asynccontextmanager
async def device_session(
    port: int, key: str, protocol: aiomqtt.ProtocolVersion = V5, subscribe: bool = True
) -> AsyncIterator[Device]:
    """A device connected with its key as user name and no password, as the official clients do;
    subscribed to its responses and commands unless told otherwise."""
    async with aiomqtt.Client(
        "127.0.0.1", port, username=key, protocol=protocol,
        identifier=f"test-{uuid.uuid4().hex[:10]}",
    ) as client:  # fmt: skip
        device = Device(client, key)
        if subscribe:
            await device.subscribe(f"m2x/{key}/responses", f"m2x/{key}/commands")
        reader = asyncio.create_task(device.read())
        try:
            yield device
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


async def new_device(mqtt: MqttStack) -> tuple[str, str, str]:
    """(master key, device id, primary device key) of a fresh device of a fresh account."""
    _, master = await mqtt.stack.new_account()
    status, body, _ = await mqtt.stack.request(
        "POST", "/v2/devices", key=master, json={"name": "d", "visibility": "private"}
    )
    assert status == 201, body
    return master, body["id"], body["key"]
