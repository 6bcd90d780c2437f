"""Streams and their values: create/update/delete streams, write and read values."""

from __future__ import annotations

import builtins
import dataclasses
import time
from typing import Any

import numpy as np

from m2x.runtime.errors import NotFound, ValidationFailed
from services.storage.access import Caller, check_stream
from services.storage.model import (
    Device,
    Location,
    Stream,
    StreamSpec,
    bounds,
    finite,
    numeric_values,
    text_values,
    timestamps_valid,
    validate_location,
    validate_stream,
)
from services.storage.state import State

SAMPLE_TYPES = ("nth", "min", "max", "count", "avg", "sum", "stddev")
MAX_LIMIT = 10_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    """Values for one stream as they arrived: numbers or texts, one per timestamp."""

    stream: str
    timestamps_ms: np.ndarray  # int64
    numbers: np.ndarray  # float64
    texts: list[str]


class Streams:
    def __init__(self, state: State) -> None:
        self.state = state
        self.store = state.store

    def get(self, caller: Caller, device: Device, name: str) -> Stream:
        check_stream(caller, name)
        stream = self.store.streams_of(device.id).get(name)
        if stream is None:
            raise NotFound("Stream", name)
        return stream

    def list(self, caller: Caller, device: Device) -> list[Stream]:
        streams = sorted(self.store.streams_of(device.id).values(), key=lambda s: s.name)
        return [s for s in streams if not caller.stream or s.name == caller.stream]

    async def put(self, caller: Caller, device: Device, name: str, spec: StreamSpec,
                  fields: builtins.list[str]) -> tuple[bool, Stream]:  # fmt: skip
        check_stream(caller, name)
        async with self.state.write_lock:
            current = self.store.streams_of(device.id).get(name)
            base = current.spec if current else StreamSpec()
            merged = validate_stream(
                name, dataclasses.replace(base, **{f: getattr(spec, f) for f in fields})
            )
            if current and merged.type != base.type and (device.id, name) in self.state.latest:
                # Stored values would no longer fit the stream's type.
                raise ValidationFailed({"type": ["not_valid"]})
            now = now_ms()
            stream = Stream(device.account_id, device.id, name, merged,
                            current.created_ms if current else now, now)  # fmt: skip
            await self.store.save_streams([stream])
        return current is None, stream

    async def delete(self, caller: Caller, device: Device, name: str) -> None:
        stream = self.get(caller, device, name)
        async with self.state.write_lock:
            await self.store.save_streams([stream], deleted=True)
        self.state.forget_stream(device.id, name)
        await self.state.series.delete_stream(device.account_id, device.id, name)

    async def write(self, caller: Caller, device: Device, incoming: builtins.list[Incoming],
                    location: Location | None) -> int:  # fmt: skip
        """Store values of several streams (and a location); returns once durable."""
        streams = self.store.streams_of(device.id)
        errors: dict[str, list[str]] = {}
        numeric: list[tuple[str, np.ndarray, np.ndarray]] = []
        text: list[tuple[str, np.ndarray, list[str]]] = []
        for part in incoming:
            check_stream(caller, part.stream)
            stream = streams.get(part.stream)
            count = len(part.numbers) + len(part.texts)
            if stream is None:
                errors[part.stream] = ["Stream not found"]
            elif count != len(part.timestamps_ms) or (
                bool(len(part.numbers)) == bool(part.texts) and count
            ):
                errors[part.stream] = ["not_valid"]
            elif not timestamps_valid(part.timestamps_ms):
                errors[part.stream] = ["not_valid"]  # outside 1900..2299
            elif stream.numeric:
                numbers = part.numbers if len(part.numbers) else numeric_values(part.texts)
                if numbers is None or not finite(numbers):
                    errors[part.stream] = ["not_numeric"]
                else:
                    numeric.append((part.stream, part.timestamps_ms, numbers))
            else:
                texts = text_values(part.numbers, part.texts)
                if texts is None:
                    errors[part.stream] = ["not_valid"]
                else:
                    text.append((part.stream, part.timestamps_ms, texts))
        if location is not None and (problem := validate_location(location)):
            errors["location"] = problem
        if errors:
            raise ValidationFailed(errors)
        stored = 0
        if numeric or text:
            stored = await self.state.series.write(device.account_id, device.id, numeric, text)
        if location is not None:
            await self.store.add_waypoint(device.account_id, device.id, location)
            self.state.place(device.id, location)
            self.state.touch(device.id, location.timestamp_ms)
        for _name, stamps, _values in [*numeric, *text]:
            self.state.touch(device.id, bounds(stamps)[1])
        return stored

    # reads
    def _numeric(self, caller: Caller, device: Device, name: str) -> Stream:
        stream = self.get(caller, device, name)
        if not stream.numeric:
            raise ValidationFailed({"stream": ["not_numeric"]})
        return stream

    async def values(self, caller: Caller, device: Device, name: str, start_ms: int, end_ms: int,
                     lo: float | None, hi: float | None, limit: int, sort: str,
                     dir: str) -> tuple[Stream, builtins.list[tuple[int, Any]]]:  # fmt: skip
        stream = self.get(caller, device, name)
        if not stream.numeric and (lo is not None or hi is not None):
            raise ValidationFailed({"min" if lo is not None else "max": ["not_valid"]})
        if sort not in ("timestamp", "value") or dir not in ("asc", "desc"):
            raise ValidationFailed(
                {"sort" if sort not in ("timestamp", "value") else "dir": ["not_valid"]}
            )
        rows = await self.state.series.list(
            device.account_id, device.id, name, stream.spec.type, start_ms, end_ms,
            lo, hi, _limit(limit), sort, dir,
        )  # fmt: skip
        return stream, rows

    async def delete_values(self, caller: Caller, device: Device, name: str, from_ms: int,
                            end_ms: int) -> None:  # fmt: skip
        stream = self.get(caller, device, name)
        if from_ms > end_ms:
            raise ValidationFailed({"from": ["not_valid"]})
        series = self.state.series
        await series.delete_range(
            device.account_id, device.id, name, stream.spec.type, from_ms, end_ms
        )
        before = self.state.latest.get((device.id, name))
        latest = await series.latest_point(device.account_id, device.id, name, stream.spec.type)
        if self.state.latest.get((device.id, name)) is before:  # else a write came meanwhile
            self.state.forget_stream(device.id, name)
            if latest is not None:
                self.state.observe(device.id, name, *latest)

    async def sample(self, caller: Caller, device: Device, name: str, kind: str, interval: int,
                     start_ms: int, end_ms: int, lo: float | None, hi: float | None,
                     limit: int) -> builtins.list[tuple[int, float]]:  # fmt: skip
        self._numeric(caller, device, name)
        errors = {}
        if kind not in SAMPLE_TYPES:
            errors["type"] = ["not_valid"]
        if interval <= 0:
            errors["interval"] = ["not_present" if interval == 0 else "not_valid"]
        if errors:
            raise ValidationFailed(errors)
        return await self.state.series.sample(
            device.account_id,
            device.id,
            name,
            kind,
            interval,
            start_ms,
            end_ms,
            lo,
            hi,
            _limit(limit),
        )

    async def stats(self, caller: Caller, device: Device, name: str, start_ms: int, end_ms: int,
                    lo: float | None, hi: float | None) -> dict[str, Any]:  # fmt: skip
        self._numeric(caller, device, name)
        return await self.state.series.stats(
            device.account_id, device.id, name, start_ms, end_ms, lo, hi
        )

    async def device_rows(
        self, caller: Caller, device: Device, names: builtins.list[str], start_ms: int,
        end_ms: int, limit: int, conditions: builtins.list[tuple[str, str, Any]],
    ) -> builtins.list[tuple[int, dict[str, Any]]]:  # fmt: skip
        reachable = {s.name: s for s in self.list(caller, device)}
        wanted = names or list(reachable)
        missing = [n for n in wanted + [c[0] for c in conditions] if n not in reachable]
        if missing:
            raise ValidationFailed({n: ["Stream not found"] for n in missing})
        kinds = {n: reachable[n].spec.type for n in wanted}
        for stream, op, _ in conditions:
            kinds.setdefault(stream, reachable[stream].spec.type)
            # Numbers compare (gt ... eq); texts only `match`.
            if (op == "match") == reachable[stream].numeric:
                raise ValidationFailed({"conditions": ["not_valid"]})
        rows = await self.state.series.device_rows(
            device.account_id, device.id, kinds, start_ms, end_ms, _limit(limit), conditions
        )
        return [(ts, {k: v for k, v in values.items() if k in wanted}) for ts, values in rows]


def _limit(limit: int) -> int:
    return min(max(limit, 1), MAX_LIMIT) if limit else 100
