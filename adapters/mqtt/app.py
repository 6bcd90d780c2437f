"""The adapter's life: one broker connection at a time, requests and commands over it.

One long-lived aiomqtt client per connection, owned by `async with`; the request reader and
the command relay run in a TaskGroup beside it. A lost connection ends the group with
MqttError and the loop reconnects with back-off; requests already being answered finish
(their answers are lost with the connection, like any QoS 0 packet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from adapters.api.api import Api
from adapters.api.context import Services
from adapters.mqtt.commands import relay_commands
from adapters.mqtt.config import BrokerEndpoint, MqttSettings
from adapters.mqtt.requests import Responder, Workers
from m2x.runtime.lifecycle import announce_ready

logger = logging.getLogger(__name__)

INITIAL_DELAY = 0.1
MAX_DELAY = 5.0
# Some clients (PHP) set RETAIN on requests, so the broker keeps the last request of each key
# and would replay it to every new subscription (Mosquitto 2.0 does so even for shared ones):
# an adapter restart would then run old requests again. Ask for no replays, and drop any that
# still come: replays carry the retain flag, live messages never do (retainAsPublished off).
SUBSCRIPTION = SubscribeOptions(qos=0, retainAsPublished=False,
                                retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)  # fmt: skip


class MqttAdapter:
    def __init__(
        self, settings: MqttSettings, api: Api, services: Services, broker: BrokerEndpoint
    ) -> None:
        self.settings = settings
        self.services = services
        self.broker = broker
        self.topic = f"$share/{broker.share_group}/m2x/+/requests"
        responder = Responder(
            api, settings.public_url, settings.max_body_bytes, settings.max_response_bytes
        )
        self.workers = Workers(responder, settings.concurrency)
        self._announced = False

    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.broker.host, self.broker.port,
            username=self.broker.username, password=self.broker.password,
            identifier=f"m2x-mqtt-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V5, keepalive=30,
            max_queued_incoming_messages=self.settings.queue_limit,
            tls_context=ssl.create_default_context() if self.broker.tls else None,
            logger=logging.getLogger("adapters.mqtt.client"),
        )  # fmt: skip
        # aiomqtt warns past 10 unconfirmed publishes; every request in flight may have one.
        client.pending_calls_threshold = self.settings.concurrency + 16
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, reconnecting whenever the broker goes away."""
        delay = INITIAL_DELAY
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, options=SUBSCRIPTION)
                    self._connected()
                    delay = INITIAL_DELAY
                    await self._serve(client, stop)
                    return
            except* aiomqtt.MqttError as group:
                logger.warning("broker %s unreachable or lost (%s); reconnecting in %.1f s",
                               self.broker.address, group.exceptions[0], delay)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, MAX_DELAY)

    def _connected(self) -> None:
        if self._announced:
            logger.info("reconnected to broker %s", self.broker.address)
            return
        self._announced = True
        announce_ready("mqtt", self.broker.address)
        # Not the topic itself: its share group is a secret (see m2x.broker.files).
        logger.info("consuming m2x/+/requests (shared) on broker %s", self.broker.address)

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Answer requests and relay commands until `stop` (then leave cleanly) or MqttError."""
        leaving = False
        taking = False

        async def publish(topic: str, payload: bytes) -> None:
            await client.publish(topic, payload, qos=0)

        async def read() -> None:
            nonlocal taking
            async for message in client.messages:
                if message.retain:
                    logger.info("replay of a retained request on %s ignored", message.topic)
                else:
                    taking = True
                    await self.workers.take(str(message.topic), _bytes(message.payload), publish)
                    taking = False
                if leaving and not len(client.messages):
                    return

        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(read(), name="mqtt-requests")
            relay = tasks.create_task(
                relay_commands(self.services.storage, publish, self.settings.public_url),
                name="mqtt-commands",
            )
            await stop.wait()
            relay.cancel()
            # Unsubscribed, the broker sends new requests to the other replicas; the ones
            # that arrived before are still answered.
            logger.info("shutting down: leaving the shared subscription")
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(self.topic, timeout=self.settings.shutdown_grace)
            leaving = True
            if len(client.messages) or taking:
                await asyncio.wait({reader}, timeout=self.settings.shutdown_grace)
            reader.cancel()
        await self.workers.drain(self.settings.shutdown_grace)


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
