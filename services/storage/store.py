"""Devices, streams, waypoints and request logs in ClickHouse, devices and streams cached.

Devices and streams are loaded once at start (FINAL) and then served from memory; a write
returns only after its INSERT, so the cache never holds what a crash would lose.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from m2x.runtime.clickhouse import Database
from services.storage.model import Device, DeviceSpec, Location, Stream, StreamSpec

# last_activity_ms stays 0: activity is derived from values and waypoints (State.activity),
# never written per value.
_DEVICE_COLUMNS = (
    "account_id", "id", "name", "description", "visibility", "status", "serial", "tags",
    "metadata_json", "base_device", "last_activity_ms", "created_ms", "updated_ms", "version",
    "is_deleted",
)  # fmt: skip
_STREAM_COLUMNS = (
    "account_id", "device_id", "name", "display_name", "type", "unit_label", "unit_symbol",
    "created_ms", "updated_ms", "version", "is_deleted",
)  # fmt: skip
_WAYPOINT_COLUMNS = ("account_id", "device_id", "ts", "name", "latitude", "longitude",
                     "elevation", "version")  # fmt: skip
_LOG_COLUMNS = ("account_id", "device_id", "ts", "status", "method", "path")


class EntityStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.devices: dict[str, Device] = {}
        self.streams: dict[str, dict[str, Stream]] = {}  # device id -> name -> stream
        self._serials: dict[tuple[str, str], str] = {}  # (account, serial) -> device id
        self._last_version = 0

    def next_version(self) -> int:
        self._last_version = max(time.time_ns(), self._last_version + 1)
        return self._last_version

    async def load(self) -> None:
        for row in await self.db.query(
            f"SELECT {', '.join(_DEVICE_COLUMNS[:-2])} FROM devices FINAL"
        ):
            (account_id, id_, name, description, visibility, status, serial, tags, metadata_json,
             base_device, _last_activity, created_ms, updated_ms) = row  # fmt: skip
            spec = DeviceSpec(name, description, visibility, status, serial, tuple(tags),
                              orjson.loads(metadata_json or "{}"), base_device)  # fmt: skip
            self._remember(Device(id_, account_id, spec, created_ms, updated_ms))
        for row in await self.db.query(
            f"SELECT {', '.join(_STREAM_COLUMNS[:-2])} FROM streams FINAL"
        ):
            account_id, device_id, name, display_name, type_, label, symbol, created, updated = row
            stream_spec = StreamSpec(type_, label, symbol, display_name)
            stream = Stream(account_id, device_id, name, stream_spec, created, updated)
            self.streams.setdefault(device_id, {})[name] = stream

    # devices
    def _remember(self, device: Device) -> None:
        old = self.devices.get(device.id)
        if old is not None and old.spec.serial:
            self._serials.pop((old.account_id, old.spec.serial), None)
        self.devices[device.id] = device
        if device.spec.serial:
            self._serials[(device.account_id, device.spec.serial)] = device.id

    def device_by_serial(self, account_id: str, serial: str) -> Device | None:
        device_id = self._serials.get((account_id, serial))
        return self.devices.get(device_id) if device_id else None

    def devices_of(self, account_id: str) -> list[Device]:
        return [d for d in self.devices.values() if d.account_id == account_id]

    async def save_device(self, device: Device, deleted: bool = False) -> None:
        await self.db.insert("devices", [_device_row(device, self.next_version(), deleted)],
                             _DEVICE_COLUMNS)  # fmt: skip
        if deleted:
            self.devices.pop(device.id, None)
            if device.spec.serial:
                self._serials.pop((device.account_id, device.spec.serial), None)
            self.streams.pop(device.id, None)
        else:
            self._remember(device)

    # streams
    def streams_of(self, device_id: str) -> dict[str, Stream]:
        return self.streams.get(device_id, {})

    async def save_streams(self, streams: list[Stream], deleted: bool = False) -> None:
        rows = [_stream_row(s, self.next_version(), deleted) for s in streams]
        await self.db.insert("streams", rows, _STREAM_COLUMNS)
        for stream in streams:
            by_name = self.streams.setdefault(stream.device_id, {})
            if deleted:
                by_name.pop(stream.name, None)
            else:
                by_name[stream.name] = stream

    # waypoints
    async def add_waypoint(self, account_id: str, device_id: str, location: Location) -> None:
        row = (account_id, device_id, location.timestamp_ms, location.name, location.latitude,
               location.longitude, location.elevation, self.next_version())  # fmt: skip
        await self.db.insert("waypoints", [row], _WAYPOINT_COLUMNS)

    async def waypoints(self, account_id: str, device_id: str, start_ms: int = 0, end_ms: int = 0,
                        limit: int = 30) -> list[Location]:  # fmt: skip
        rows = await self.db.query(
            "SELECT toUnixTimestamp64Milli(ts), name, latitude, longitude, elevation "
            "FROM waypoints FINAL WHERE account_id = {a:String} AND device_id = {d:String} "
            "AND ts >= fromUnixTimestamp64Milli({s:Int64}) "
            "AND ({e:Int64} = 0 OR ts <= fromUnixTimestamp64Milli({e:Int64})) "
            "ORDER BY ts DESC LIMIT {n:UInt32}",
            {"a": account_id, "d": device_id, "s": start_ms, "e": end_ms, "n": limit},
        )
        return [Location(lat, lon, ts, name, elev) for ts, name, lat, lon, elev in rows]

    async def current_locations(self) -> dict[str, Location]:
        """The newest waypoint of every device."""
        rows = await self.db.query(
            "SELECT device_id, toUnixTimestamp64Milli(max(ts)), "
            "argMax(tuple(name, latitude, longitude, elevation), (ts, version)) "
            "FROM waypoints GROUP BY device_id"
        )
        return {d: Location(lat, lon, ts, name, elev) for d, ts, (name, lat, lon, elev) in rows}

    async def delete_waypoints(
        self, account_id: str, device_id: str, from_ms: int, end_ms: int
    ) -> None:
        await self.db.command(
            "DELETE FROM waypoints WHERE account_id = {a:String} AND device_id = {d:String} "
            "AND ts >= fromUnixTimestamp64Milli({f:Int64}) "
            "AND ts <= fromUnixTimestamp64Milli({e:Int64})",
            {"a": account_id, "d": device_id, "f": from_ms, "e": end_ms},
        )

    async def delete_device_rows(self, account_id: str, device_id: str) -> None:
        for table in ("waypoints", "request_log"):
            await self.db.command(
                f"DELETE FROM {table} WHERE account_id = {{a:String}} AND device_id = {{d:String}}",
                {"a": account_id, "d": device_id},
            )

    # request log
    async def append_log(self, rows: list[tuple[str, str, int, int, str, str]]) -> None:
        await self.db.insert("request_log", rows, _LOG_COLUMNS)

    async def request_log(self, account_id: str, device_id: str) -> list[tuple[int, int, str, str]]:
        return await self.db.query(
            "SELECT toUnixTimestamp64Milli(ts), status, method, path FROM request_log "
            "WHERE account_id = {a:String} AND device_id = {d:String} ORDER BY ts DESC LIMIT 100",
            {"a": account_id, "d": device_id},
        )


def _device_row(device: Device, version: int, deleted: bool) -> tuple[Any, ...]:
    s = device.spec
    return (device.account_id, device.id, s.name, s.description, s.visibility, s.status, s.serial,
            list(s.tags), orjson.dumps(s.metadata).decode(), s.base_device,
            0, device.created_ms, device.updated_ms, version,
            int(deleted))  # fmt: skip


def _stream_row(stream: Stream, version: int, deleted: bool) -> tuple[Any, ...]:
    s = stream.spec
    return (stream.account_id, stream.device_id, stream.name, s.display_name, s.type, s.unit_label,
            s.unit_symbol, stream.created_ms, stream.updated_ms, version, int(deleted))  # fmt: skip
