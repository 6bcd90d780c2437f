"""Written values between their answer and their INSERT, kept as compact columns.

One write of one device becomes one Batch per table: its streams' timestamps and values as
numpy arrays (16 bytes a numeric value, where Python lists of objects took ~130), versions
counting up from the batch's first. The same arrays are the write's WAL record (as raw
bytes) and, concatenated, the columns of an Arrow table that ClickHouse inserts without a
Python object per value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # see below

from services.storage.hourly import HOUR_MS
from services.storage.value_queries import NUMERIC, StoredRow

# (stream, timestamps_ms, values): timestamps and numeric values as sequences or arrays.
Part = tuple[str, Sequence[int] | np.ndarray, Sequence[Any] | np.ndarray]

_TS = pa.timestamp("ms", tz="UTC")
# pyarrow imports its compute module with the first array of a time zone's timestamps (~150 ms
# with the GIL held): imported above, at start, and not in the first flush, stalling writes.


@dataclass(slots=True)  # not frozen: its __init__ would cost a few µs more per write
class Columns:
    """Values of one device's streams, stream after stream, each stream once."""

    streams: tuple[str, ...]
    counts: tuple[int, ...]  # values of each stream, none 0
    stamps: np.ndarray  # int64 ms since the epoch
    values: np.ndarray | list[str]  # float64 for numeric streams, texts for the others

    @classmethod
    def from_parts(cls, parts: Sequence[Part], numeric: bool) -> Columns:
        """(stream, timestamps, values) parts as columns; streams without values are left out."""
        parts = [p for p in parts if len(p[1]) or len(p[2])]
        for stream, part_stamps, part_values in parts:
            if len(part_stamps) != len(part_values):
                raise ValueError(f"stream {stream!r}: {len(part_stamps)} timestamps, {len(part_values)} values")  # fmt: skip
        stamps = _concatenate([np.asarray(p[1], np.int64) for p in parts], np.int64)
        if numeric:
            values: np.ndarray | list[str] = _concatenate(
                [np.asarray(p[2], np.float64) for p in parts], np.float64
            )
        else:
            values = list(itertools.chain.from_iterable(p[2] for p in parts))
        return cls(tuple(p[0] for p in parts), tuple(len(p[1]) for p in parts), stamps, values)

    @property
    def rows(self) -> int:
        return len(self.stamps)

    def starts(self) -> list[int]:
        """Where each stream's values begin."""
        return [0, *itertools.accumulate(self.counts[:-1])]

    def parts(self) -> Iterator[tuple[str, np.ndarray, np.ndarray | list[str]]]:
        """(stream, timestamps, values) of each stream, as written."""
        end = 0
        for stream, count in zip(self.streams, self.counts, strict=True):
            start, end = end, end + count
            yield stream, self.stamps[start:end], self.values[start:end]

    def ascending(self) -> bool:
        """Whether each stream's timestamps strictly ascend (as devices send them): then no
        timestamp repeats within a stream and its newest value is its last."""
        if len(self.stamps) < 2:
            return True
        rising = self.stamps[1:] > self.stamps[:-1]
        if len(self.counts) > 1:  # where one stream ends and the next begins does not count
            rising[self._lasts()[:-1]] = True
        return bool(rising.all())

    def _lasts(self) -> list[int]:
        """The index of each stream's last value. Summed in Python: np.cumsum first turns
        the tuple of counts into an array, which made ascending() and newest() ~2x slower."""
        return [end - 1 for end in itertools.accumulate(self.counts)]

    def earliest(self, ascending: bool) -> list[int]:
        """The smallest timestamp of each stream (`ascending`: as `self.ascending()` says)."""
        if len(self.counts) == 1:  # one stream: the most common write
            return [int(self.stamps[0] if ascending else self.stamps.min())]
        starts = self.starts()
        if ascending:
            return self.stamps[starts].tolist()  # type: ignore[no-any-return]
        return np.minimum.reduceat(self.stamps, starts).tolist()  # type: ignore[no-any-return]

    def newest(self, ascending: bool | None = None) -> list[tuple[str, int, Any]]:
        """(stream, timestamp, value) of the newest value of each stream (`ascending`: as
        `self.ascending()` says, computed if not given)."""
        if len(self.stamps) == 1:  # a single value: the most common write
            value = self.values[0]
            return [(self.streams[0], int(self.stamps[0]),
                     value.item() if isinstance(value, np.generic) else value)]  # fmt: skip
        if self.ascending() if ascending is None else ascending:
            lasts = self._lasts()
            values = self.values[lasts].tolist() if isinstance(self.values, np.ndarray) else [
                self.values[last] for last in lasts
            ]  # fmt: skip
            return list(zip(self.streams, self.stamps[lasts].tolist(), values, strict=True))
        newest = []
        for stream, stamps, part_values in self.parts():
            at = int(stamps.argmax())
            value = part_values[at]
            newest.append((stream, int(stamps[at]),
                           value.item() if isinstance(value, np.generic) else value))  # fmt: skip
        return newest


@dataclass(slots=True)
class Batch(Columns):
    """One write's rows for one table, in version order: stream after stream, as they came."""

    kind: str
    account_id: str
    device_id: str
    first_version: int

    @classmethod
    def of(cls, kind: str, account_id: str, device_id: str, parts: Columns | Sequence[Part],
           first_version: int) -> Batch:  # fmt: skip
        columns = (
            parts if isinstance(parts, Columns) else Columns.from_parts(parts, kind == NUMERIC)
        )
        return cls(columns.streams, columns.counts, columns.stamps, columns.values,
                   kind, account_id, device_id, first_version)  # fmt: skip

    @property
    def last_version(self) -> int:
        return self.first_version + len(self.stamps) - 1

    def hours(self) -> set[tuple[str, str, str, int]]:
        """(account, device, stream, hour start in ms) of every hour the batch has values in."""
        return {
            (self.account_id, self.device_id, stream, hour)
            for stream, stamps, _ in self.parts()
            for hour in np.unique(stamps // HOUR_MS * HOUR_MS).tolist()
        }

    def stored_rows(self) -> list[StoredRow]:
        """The rows as ClickHouse will hold them: (account, device, stream, ts, value, version)."""
        streams = itertools.chain.from_iterable(
            itertools.repeat(s, c) for s, c in zip(self.streams, self.counts, strict=True)
        )
        values = self.values.tolist() if isinstance(self.values, np.ndarray) else self.values
        return list(zip(itertools.repeat(self.account_id), itertools.repeat(self.device_id),
                        streams, self.stamps.tolist(), values,
                        range(self.first_version, self.last_version + 1)))  # fmt: skip

    # the WAL record of a write: [2, account, device, numeric batch, text batch]
    def record(self) -> list[Any]:
        values = self.values.tobytes() if isinstance(self.values, np.ndarray) else self.values
        return [self.first_version, list(self.streams), list(self.counts),
                self.stamps.tobytes(), values]  # fmt: skip

    @classmethod
    def from_record(cls, kind: str, account_id: str, device_id: str, record: list[Any]) -> Batch:
        first, streams, counts, stamps, values = record
        if kind == NUMERIC:
            values = np.frombuffer(values, np.float64)
        return cls(tuple(streams), tuple(counts), np.frombuffer(stamps, np.int64), values,
                   kind, account_id, device_id, first)  # fmt: skip


RECORD_FORMAT = 2


def write_record(account_id: str, device_id: str, numeric: Batch | None, text: Batch | None) -> list[Any]:  # fmt: skip
    return [RECORD_FORMAT, account_id, device_id,
            numeric.record() if numeric else None, text.record() if text else None]  # fmt: skip


def read_record(record: list[Any], kinds: tuple[str, str]) -> list[Batch]:
    """The batches of a WAL record, of this format or of the first one (parts as lists)."""
    if record[0] == RECORD_FORMAT:
        _, account_id, device_id, *batches = record
        return [Batch.from_record(kind, account_id, device_id, b)
                for kind, b in zip(kinds, batches, strict=True) if b]  # fmt: skip
    account_id, device_id, numeric_first, numeric, text_first, text = record
    return [Batch.of(kind, account_id, device_id, [tuple(p) for p in parts], first)
            for kind, first, parts in zip(kinds, (numeric_first, text_first), (numeric, text),
                                          strict=True) if parts]  # fmt: skip


def arrow_table(batches: Sequence[Batch]) -> pa.Table:
    """The batches (all of one kind) as one table of the values tables' columns."""
    sizes = np.fromiter((b.rows for b in batches), np.int64, len(batches))
    accounts: dict[str, int] = {}
    devices: dict[str, int] = {}
    streams: dict[str, int] = {}
    account_codes = [accounts.setdefault(b.account_id, len(accounts)) for b in batches]
    device_codes = [devices.setdefault(b.device_id, len(devices)) for b in batches]
    stream_codes = [streams.setdefault(s, len(streams)) for b in batches for s in b.streams]
    stream_counts = [c for b in batches for c in b.counts]
    # Versions count up within a batch: row i of the table has i + (first - offset) of its batch.
    offsets = np.cumsum(sizes) - sizes
    firsts = np.fromiter((b.first_version for b in batches), np.int64, len(batches))
    versions = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(firsts - offsets, sizes)
    if batches[0].kind == NUMERIC:
        values = pa.array(_concatenate([b.values for b in batches], np.float64))  # type: ignore[misc]
    else:
        values = pa.array(list(itertools.chain.from_iterable(b.values for b in batches)), pa.string())  # fmt: skip
    return pa.table({
        "account_id": _dictionary(np.repeat(np.array(account_codes, np.int32), sizes), accounts),
        "device_id": _dictionary(np.repeat(np.array(device_codes, np.int32), sizes), devices),
        "stream": _dictionary(np.repeat(np.array(stream_codes, np.int32), stream_counts), streams),
        "ts": pa.array(_concatenate([b.stamps for b in batches], np.int64), _TS),
        "value": values,
        "version": pa.array(versions.astype(np.uint64)),
    })  # fmt: skip


def _dictionary(codes: np.ndarray, names: dict[str, int]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(codes, pa.array(list(names), pa.string()))


def _concatenate(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays) if arrays else np.empty(0, dtype)
