"""Streams and their values: create/update/delete streams, write and read values."""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from m2x.runtime.errors import NotFound, ValidationFailed
from services.storage.access import Caller, check_stream
from services.storage.batches import Columns, Part
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
from services.storage.series import Write
from services.storage.state import State

SAMPLE_TYPES = ("nth", "min", "max", "count", "avg", "sum", "stddev")
MAX_LIMIT = 10_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(slots=True)  # not frozen: its __init__ would cost ~1 us more per write
class Incoming:
    """A write's values as they arrived: stream after stream, each all numbers or all texts."""

    streams: builtins.list[str]
    counts: builtins.list[int]  # values of each stream
    texts: builtins.list[bool]  # per stream: its values are in `text_values`
    stamps: np.ndarray  # int64 ms, stream after stream
    numbers: np.ndarray  # float64: the values of the streams sent as numbers, in order
    text_values: builtins.list[str]  # the values of the streams sent as texts, in order


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

    async def write(self, caller: Caller, device: Device, incoming: Incoming,
                    location: Location | None) -> int:  # fmt: skip
        """Store values of several streams (and a location); returns once durable."""
        (outcome,) = await self.write_many([(caller, device, incoming, location)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def write_many(
        self, writes: Sequence[tuple[Caller, Device, Incoming, Location | None]]
    ) -> builtins.list[int | Exception]:
        """Store several writes (each as `write`); returns, once all are durable, what each
        stored or the error that refused or failed it. The valid ones go to Series together."""
        outcomes: builtins.list[int | Exception] = [0] * len(writes)
        checked: builtins.list[tuple[int, Device, Location | None, int | None]] = []
        values: builtins.list[Write] = []
        for index, (caller, device, incoming, location) in enumerate(writes):
            try:
                numeric, text, high = self._checked(caller, device, incoming, location)
            except Exception as exc:  # refused (a DomainError), or failed only this write
                outcomes[index] = exc
                continue
            checked.append((index, device, location, high))
            values.append((device.account_id, device.id, numeric, text))
        if not checked:
            return outcomes
        try:
            stored = await self.state.series.write_many(values)
        except Exception as exc:
            for index, *_ in checked:
                outcomes[index] = exc
            return outcomes
        for (index, device, location, high), count in zip(checked, stored, strict=True):
            if high is not None:
                self.state.touch(device.id, high)
            outcomes[index] = count
            if location is not None:
                try:
                    await self.store.add_waypoint(device.account_id, device.id, location)
                except Exception as exc:  # the values are stored; the location is not
                    outcomes[index] = exc
                    continue
                self.state.place(device.id, location)
                self.state.touch(device.id, location.timestamp_ms)
        return outcomes

    def _checked(self, caller: Caller, device: Device, incoming: Incoming,
                 location: Location | None) -> tuple[Columns | builtins.list[Part], builtins.list[Part], int | None]:  # fmt: skip
        """The write's (numeric, text) values as Series takes them and its newest timestamp
        (None without values); ValidationFailed naming every stream (and the location) that
        is wrong."""
        known = self.store.streams_of(device.id)
        stamps = incoming.stamps
        low, high = bounds(stamps) if len(stamps) else (0, 0)
        # Checked once for the whole write; stream by stream only to name what is wrong.
        in_range = timestamps_valid([low, high])
        all_finite = finite(incoming.numbers)
        errors: dict[str, builtins.list[str]] = {}
        numeric: builtins.list[Part] = []
        text: builtins.list[Part] = []
        stamp_at = number_at = text_at = 0
        for name, count, as_text in zip(
            incoming.streams, incoming.counts, incoming.texts, strict=True
        ):
            check_stream(caller, name)
            stream = known.get(name)
            part_stamps = stamps[stamp_at : stamp_at + count]
            stamp_at += count
            sent: np.ndarray | builtins.list[str]
            if as_text:
                sent, text_at = incoming.text_values[text_at : text_at + count], text_at + count
            else:
                sent, number_at = incoming.numbers[number_at : number_at + count], number_at + count
            if stream is None:
                errors[name] = ["Stream not found"]
            elif not in_range and not timestamps_valid(part_stamps):
                errors[name] = ["not_valid"]  # outside 1900..2299
            elif stream.numeric:
                numbers = numeric_values(sent) if isinstance(sent, builtins.list) else sent
                if numbers is None or not (all_finite or as_text or finite(numbers)):
                    errors[name] = ["not_numeric"]
                else:
                    numeric.append((name, part_stamps, numbers))
            else:
                texts = text_values(sent)
                if texts is None:
                    errors[name] = ["not_valid"]
                else:
                    text.append((name, part_stamps, texts))
        if location is not None and (problem := validate_location(location)):
            errors["location"] = problem
        if errors:
            raise ValidationFailed(errors)
        if numeric and len(numeric) == len(incoming.streams) and not any(incoming.texts):
            # The common write: numbers for numeric streams, sent on as they came.
            columns = Columns(tuple(incoming.streams), tuple(incoming.counts), stamps,
                              incoming.numbers)  # fmt: skip
            return columns, [], high
        return numeric, text, high if len(stamps) else None

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
