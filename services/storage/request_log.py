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
        rows = []
        for e in entries[:MAX_BATCH]:
            device = (
                self.store.device_by_serial(e.account_id, e.serial)
                if e.serial
                else self.store.devices.get(e.device_id)
            )
            if device is not None and device.account_id == e.account_id:
                rows.append(
                    (e.account_id, device.id, e.timestamp_ms, e.status, e.method, e.path[:1024])
                )
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
