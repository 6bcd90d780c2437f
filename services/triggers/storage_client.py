"""What the triggers service asks the storage service: streams, devices, the value feed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from m2x.runtime.errors import DomainError, Unavailable
from m2x.runtime.grpc_status import to_domain_error
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as pb
from m2x.storage.v1 import storage_pb2_grpc
from services.triggers.model import Owner, Value

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamInfo:
    type: str
    unit: str | None  # the unit's symbol
    latest: Value | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    name: str
    serial: str | None
    location: dict[str, Any] | None  # as the notification payload shows it


def _location(message: pb.Location) -> dict[str, Any]:
    return {
        "name": message.name or None,
        "latitude": message.latitude,
        "longitude": message.longitude,
        "elevation": message.elevation if message.HasField("elevation") else None,
        "timestamp": iso_ms(message.timestamp_ms),
    }


async def _call(rpc: Any, request: Any) -> Any:
    try:
        return await rpc(request)
    except grpc.RpcError as exc:
        error: DomainError | None = to_domain_error(exc)
        raise (error or Unavailable("storage service unavailable")) from None


class _TtlCache:
    """Answers reused for `ttl` seconds, then for as long again while a single background call
    refreshes them (so notifications do not wait on it); older or missing ones are fetched,
    concurrent misses of one key sharing one call."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._flights: dict[Any, asyncio.Future[Any]] = {}

    def fresh(self, key: Any, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached answer for `key` if recent enough, else None (then call `get`)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = time.monotonic() - entry[0]  # < 0: still fresh; then stale for one ttl
        if age < 0:
            return entry[1]
        if age < self.ttl:
            if key not in self._flights:
                self._start(key, load).add_done_callback(_quiet)
            return entry[1]
        return None

    def _start(self, key: Any, load: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        started = time.monotonic()
        flight = asyncio.ensure_future(load())
        self._flights[key] = flight

        def landed(done: asyncio.Future[Any]) -> None:
            self._flights.pop(key, None)
            if self.ttl > 0 and not done.cancelled() and done.exception() is None:
                if len(self._entries) > 100_000:
                    self._entries.clear()
                # Stored as "fresh until": a jittered ttl, so that entries loaded together
                # (at start, in a burst) are not all refreshed in the same instant.
                until = started + self.ttl * random.uniform(0.5, 1.0)
                self._entries[key] = (until, done.result())

        flight.add_done_callback(landed)
        return flight

    async def get(self, key: Any, load: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key) or self._start(key, load)
        return await asyncio.shield(flight)


def _quiet(flight: asyncio.Future[Any]) -> None:
    """A background refresh that failed leaves the old answer until it is too old."""
    if not flight.cancelled():
        flight.exception()


class StorageClient:
    def __init__(self, channel: grpc.aio.Channel, cache_ttl: float) -> None:
        self.stub = storage_pb2_grpc.StorageServiceStub(channel)
        self._devices = _TtlCache(cache_ttl)
        self._streams = _TtlCache(cache_ttl)

    @staticmethod
    def _request(kind: type, owner: Owner, **fields: Any) -> Any:
        caller = pb.Caller(account_id=owner.account_id, key_kind="master")
        return kind(caller=caller, device=pb.DeviceRef(id=owner.device_id), **fields)

    async def streams(self, owner: Owner) -> dict[str, StreamInfo]:
        """The device's streams, fresh (NotFound "Device" when it is gone)."""
        reply = await _call(self.stub.ListStreams, self._request(pb.ListStreamsRequest, owner))
        return {
            s.name: StreamInfo(
                s.type, s.unit.symbol or None,
                (s.text if s.type == "alphanumeric" else s.number) if s.has_value else None,
            )
            for s in reply.streams
        }  # fmt: skip

    async def cached_streams(self, owner: Owner) -> dict[str, StreamInfo]:
        load = lambda: self.streams(owner)  # noqa: E731
        found = self._streams.fresh(owner.key, load)
        return found if found is not None else await self._streams.get(owner.key, load)

    async def device(self, owner: Owner) -> DeviceInfo:
        """Name, serial and current location, at most about twice the cache's ttl old."""

        async def load() -> DeviceInfo:
            reply = await _call(self.stub.GetDevice, self._request(pb.GetDeviceRequest, owner))
            d = reply.device
            location = _location(d.location) if d.HasField("location") else None
            return DeviceInfo(d.id, d.name, d.serial or None, location)

        found = self._devices.fresh(owner.key, load)
        return found if found is not None else await self._devices.get(owner.key, load)

    def watch(
        self, devices: list[tuple[str, str]], after_version: int
    ) -> grpc.aio.UnaryStreamCall[pb.WatchValuesRequest, pb.WatchValuesResponse]:
        """The WatchValues call (an async iterator of WatchValuesResponse)."""
        request = pb.WatchValuesRequest(
            devices=[pb.DeviceKey(account_id=a, device_id=d) for a, d in devices],
            after_version=after_version,
        )
        return self.stub.WatchValues(request, timeout=None)
