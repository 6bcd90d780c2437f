"""What the storage service keeps in memory beside its cache of entities: latest values
(kept by Series), current locations and last activity per device, derived at start."""

from __future__ import annotations

import asyncio
from typing import Any

from services.storage.model import Location
from services.storage.series import Series
from services.storage.store import EntityStore


class State:
    def __init__(self, store: EntityStore, series: Series) -> None:
        self.store = store
        self.series = series
        # Entity writes are few; one lock keeps read-modify-write of a device or stream whole.
        self.write_lock = asyncio.Lock()
        # (device, stream) -> newest point; Series keeps it current as values are written.
        self.latest = series.latest
        self.locations: dict[str, Location] = {}  # device -> current location
        self.activity: dict[str, int] = {}  # device -> last write, ms

    async def load(self) -> None:
        await self.store.load()
        for (device_id, _stream), (ts, _value) in self.latest.items():
            self.touch(device_id, ts)
        for device_id, location in (await self.store.current_locations()).items():
            self.locations[device_id] = location
            self.touch(device_id, location.timestamp_ms)

    def touch(self, device_id: str, ts_ms: int) -> None:
        if ts_ms > self.activity.get(device_id, 0):
            self.activity[device_id] = ts_ms

    def observe(self, device_id: str, stream: str, ts_ms: int, value: float | str) -> None:
        current = self.latest.get((device_id, stream))
        if current is None or ts_ms >= current[0]:
            self.latest[(device_id, stream)] = (ts_ms, value)

    def place(self, device_id: str, location: Location) -> None:
        current = self.locations.get(device_id)
        if current is None or location.timestamp_ms >= current.timestamp_ms:
            self.locations[device_id] = location

    def latest_value(self, device_id: str, stream: str) -> Any:
        entry = self.latest.get((device_id, stream))
        return entry[1] if entry else None

    def current_location(self, device_id: str) -> tuple[float, float] | None:
        location = self.locations.get(device_id)
        return (location.latitude, location.longitude) if location else None

    def forget_device(self, device_id: str) -> None:
        self.locations.pop(device_id, None)
        self.activity.pop(device_id, None)
        for key in [k for k in self.latest if k[0] == device_id]:
            del self.latest[key]

    def forget_stream(self, device_id: str, stream: str) -> None:
        self.latest.pop((device_id, stream), None)
