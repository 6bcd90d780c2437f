"""The per-device request log (spec §6): the last 100 requests that targeted a device."""

from __future__ import annotations

from m2x.storage.v1 import storage_pb2 as pb
from services.storage.model import Device
from services.storage.store import EntityStore

MAX_BATCH = 10_000


class RequestLog:
    def __init__(self, store: EntityStore) -> None:
        self.store = store

    async def append(self, entries: list[pb.RequestLogEntry]) -> None:
        # Adapters send batches; entries for devices that do not exist are dropped.
        rows = [
            (e.account_id, e.device_id, e.timestamp_ms, e.status, e.method, e.path[:1024])
            for e in entries[:MAX_BATCH]
            if e.device_id in self.store.devices
        ]
        if rows:
            await self.store.append_log(rows)

    async def list(self, device: Device) -> list[pb.RequestLogEntry]:
        rows = await self.store.request_log(device.account_id, device.id)
        return [
            pb.RequestLogEntry(
                account_id=device.account_id,
                device_id=device.id,
                timestamp_ms=ts,
                status=status,
                method=method,
                path=path,
            )
            for ts, status, method, path in rows
        ]
