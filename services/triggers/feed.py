"""Following the storage service's WatchValues feed for every device that has enabled triggers.

The subscription names its devices, so when the set changes (a trigger on a new device) the
feed re-subscribes from the last version it received. It starts from the engine's saved
cursor, so values acknowledged while this service was down are replayed by storage and
evaluated on return; a storage restart or a "fell behind" end of stream resumes the same way.
Versions at or below every enabled trigger's `since_version` concern none of them and are
skipped, so a first trigger does not replay a device's whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from m2x.storage.v1 import storage_pb2
from services.triggers.engine import Engine
from services.triggers.registry import Registry
from services.triggers.storage_client import StorageClient

logger = logging.getLogger(__name__)

RETRY_INITIAL = 0.1
RETRY_MAX = 2.0


class Feed:
    def __init__(self, storage: StorageClient, registry: Registry, engine: Engine) -> None:
        self.storage = storage
        self.registry = registry
        self.engine = engine
        self.received = engine.cursor  # the last version handed to the engine
        self.caught_up = asyncio.Event()  # set while the subscription is live (tests, health)
        self._changed = asyncio.Event()
        self._devices: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="value-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def refresh(self) -> None:
        """Re-subscribe if the set of watched devices changed."""
        if self.registry.watched_devices() != self._devices:
            self._changed.set()

    async def _run(self) -> None:
        delay = RETRY_INITIAL
        while True:
            self._changed.clear()
            self._devices = self.registry.watched_devices()
            if not self._devices:
                self.caught_up.set()
                await self._changed.wait()
                continue
            self.caught_up.clear()
            after = max(self.received, self.registry.floor())
            try:
                if await self._follow(after):
                    delay = RETRY_INITIAL
                    continue  # the device set changed: re-subscribe at once
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    logger.warning("value feed fell behind; resuming from %d", self.received)
                    continue
                logger.warning("value feed interrupted (%s); retrying in %.1f s", exc.code(), delay)
            self.caught_up.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _follow(self, after: int) -> bool:
        """Read the stream until it ends (False) or the device set changes (True)."""
        call = self.storage.watch(self._devices, after)
        reader = asyncio.ensure_future(self._read(call))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({reader, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            if not reader.done():
                call.cancel()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                    await reader
        if reader.done() and not reader.cancelled():
            reader.result()  # raises the stream's error
            return False
        return True

    async def _read(
        self,
        call: grpc.aio.UnaryStreamCall[
            storage_pb2.WatchValuesRequest, storage_pb2.WatchValuesResponse
        ],
    ) -> None:
        async for message in call:
            await self.engine.room.wait()
            if message.values:
                self.received = message.values[-1].version
                self.engine.push(message.values)
            if message.caught_up:
                self.caught_up.set()
