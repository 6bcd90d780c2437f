"""Commands to devices: from the storage service's feed to `m2x/<device primary key>/commands`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import orjson

from adapters.mqtt.requests import Publish
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as pb

logger = logging.getLogger(__name__)

INITIAL_DELAY = 0.1
MAX_DELAY = 2.0


def command_message(delivery: pb.CommandDelivery, base_url: str) -> tuple[str, bytes]:
    """The topic and payload of a delivery, with the fields the official clients read.

    The Python client takes the device id from the URL's third-from-last path segment, and
    the C client rejects a command without `id` and `sent_at`.
    """
    url = f"{base_url.rstrip('/')}/v2/devices/{delivery.device_id}/commands/{delivery.id}"
    message = {
        "id": delivery.id,
        "url": url,
        "name": delivery.name,
        "data": orjson.loads(delivery.data_json) if delivery.data_json else None,
        "sent_at": iso_ms(delivery.sent_at_ms),
    }
    return f"m2x/{delivery.device_key}/commands", orjson.dumps(message)


async def relay_commands(storage: Any, publish: Publish, base_url: str) -> None:
    """Publish every command the storage service hands this adapter; reconnect for ever."""
    delay = INITIAL_DELAY
    while True:
        reason = "stream ended"
        try:
            call = storage.WatchCommands(pb.WatchCommandsRequest(), wait_for_ready=True)
            await call.initial_metadata()  # sent once storage has registered this watcher
            logger.info("command feed connected")
            delay = INITIAL_DELAY
            async for delivery in call:
                await _publish_one(delivery, publish, base_url)
        except grpc.RpcError as exc:
            reason = str(exc.code())
        logger.warning("command feed lost (%s); reconnecting in %.1f s", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


async def _publish_one(delivery: pb.CommandDelivery, publish: Publish, base_url: str) -> None:
    try:
        topic, payload = command_message(delivery, base_url)
        await publish(topic, payload)
    except Exception as exc:  # one bad command (or a lost broker) must not stop the feed
        logger.warning("command %s for device %s not published: %r", delivery.id,
                       delivery.device_id, exc)  # fmt: skip
