"""Value entries of a request body as the columns storage takes (pb.ValueColumns).

A batch of 1,000 values crosses to storage as a few arrays of raw bytes, so neither side
makes a Python object or a protobuf field per value. Well-formed batches are converted in
bulk (`bulk_columns`); anything else goes entry by entry (`entries`, `Columns.add`), which
finds every error and names it the way spec §1.13 does.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from adapters.api.fields import FieldReader
from m2x.runtime.timefmt import parse_iso, parse_iso_many
from m2x.runtime.value_wire import pack_numbers, pack_stamps
from m2x.storage.v1 import storage_pb2 as pb

MAX_VALUES = 10_000  # per stream per request
_TIMESTAMP, _VALUE = operator.itemgetter("timestamp"), operator.itemgetter("value")


class Columns:
    """Streams added one by one, then sent as one pb.ValueColumns."""

    __slots__ = ("counts", "numbers", "stamps", "streams", "text_values", "texts")

    def __init__(self) -> None:
        self.streams: list[str] = []
        self.counts: list[int] = []
        self.texts: list[bool] = []
        self.stamps: list[int] = []
        self.numbers: list[float] = []
        self.text_values: list[str] = []

    def add(self, name: str, entries: list[tuple[int, Any]], fields: FieldReader, where: str) -> None:  # fmt: skip
        """One stream's (timestamp, value) entries: numbers when all are numbers, else texts."""
        values = [v for _, v in entries]
        kinds = set(map(type, values))  # exact types: a bool is not a number here
        if kinds == {str}:
            as_text = True
        elif kinds <= {float, int} or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            as_text = False
        elif any(isinstance(v, bool) or not isinstance(v, int | float | str) for v in values):
            fields.fail(where, "not_valid")
            return
        else:  # numbers among texts: all of them texts
            as_text, values = True, [v if isinstance(v, str) else repr(v) for v in values]
        if as_text:
            self.text_values += values
        else:
            self.numbers += map(float, values)
        self.streams.append(name)
        self.counts.append(len(entries))
        self.texts.append(as_text)
        self.stamps += (t for t, _ in entries)

    def message(self) -> pb.ValueColumns:
        return pb.ValueColumns(
            streams=self.streams, counts=self.counts, texts=self.texts,
            timestamps_ms=pack_stamps(self.stamps), numbers=pack_numbers(self.numbers),
            text_values=self.text_values,
        )  # fmt: skip


def timestamp(fields: FieldReader, entry: Mapping[str, Any], default: int | None, where: str) -> int:  # fmt: skip
    raw = entry.get("timestamp")
    if raw is None:
        if default is None:
            fields.fail(where, "not_present")
            return 0
        return default
    try:
        return parse_iso(raw)
    except (TypeError, ValueError):
        fields.fail(where, "not_valid")
        return 0


def entries(fields: FieldReader, raw: Any, where: str, default_ts: int | None) -> list[tuple[int, Any]]:  # fmt: skip
    """The (timestamp, value) entries of a list of value objects; [] with errors noted."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_VALUES:
        fields.fail(where, "not_present" if not raw else "not_valid")
        return []
    found = []
    for entry in raw:
        if not isinstance(entry, Mapping) or "value" not in entry:
            fields.fail(where, "not_valid")
            return []
        found.append((timestamp(fields, entry, default_ts, where), entry["value"]))
    return found


# gc=False: decoded bodies are trees of plain values (no reference cycles), so the collector
# need not track their thousands of entries; decoding and freeing a 1,000-value body costs
# ~45% less.
class Entry(msgspec.Struct, gc=False):
    """A numeric value entry of a body decoded by its route's type (see routes.Endpoint.
    body_type). Only numbers fit: a body with a text value is decoded as plain values, whose
    path handles text and mixed streams (and names errors)."""

    timestamp: str
    value: float  # a JSON int too (as a float, which storage makes of it anyway); not a bool


class UpdatesBody(msgspec.Struct, gc=False):
    """The body of POST /updates (spec §8.2) when it has the expected shape."""

    values: dict[str, list[Entry]]
    location: Any = None


class ValuesBody(msgspec.Struct, gc=False):
    """The body of POST /streams/{name}/values (spec §7.7) when it has the expected shape."""

    values: list[Entry]


_ENTRY_STAMP, _ENTRY_VALUE = operator.attrgetter("timestamp"), operator.attrgetter("value")


def number_columns(streams: Iterable[tuple[str, list[Entry]]]) -> pb.ValueColumns | None:
    """Streams of typed entries, all numbers, converted at once; None when a stream is empty
    or too long or a timestamp is not valid, for the entry-by-entry path to name the error."""
    names, counts, stamps, numbers = [], [], [], []
    for name, raw in streams:
        if not raw or len(raw) > MAX_VALUES:
            return None
        names.append(name)
        counts.append(len(raw))
        stamps += map(_ENTRY_STAMP, raw)
        numbers += map(_ENTRY_VALUE, raw)
    try:
        millis = parse_iso_many(stamps)
    except ValueError:
        return None
    return pb.ValueColumns(
        streams=names, counts=counts, texts=[False] * len(names),
        timestamps_ms=pack_stamps(millis), numbers=pack_numbers(numbers),
    )  # fmt: skip


def bulk_columns(streams: Iterable[tuple[Any, Any]]) -> pb.ValueColumns | None:
    """(name, entry list) streams of plain values, all converted at once; None when anything
    is not well formed, for the entry-by-entry path to find every error."""
    names, stamps, columns = [], [], []
    try:
        for name, raw in streams:
            if type(raw) is not list or not raw or len(raw) > MAX_VALUES:
                return None
            # TypeError when an entry is not an object, KeyError when a field is missing.
            stamps += map(_TIMESTAMP, raw)
            columns.append(list(map(_VALUE, raw)))
            names.append(str(name))
        millis = parse_iso_many(stamps)
    except (KeyError, TypeError, ValueError):
        return None
    numbers: list[float] = []
    texts: list[str] = []
    flags = []
    for column in columns:
        kinds = set(map(type, column))
        if kinds <= {float, int}:
            numbers += column
        elif kinds == {str}:
            texts += column
        else:
            return None
        flags.append(kinds == {str})
    return pb.ValueColumns(
        streams=names, counts=list(map(len, columns)), texts=flags,
        timestamps_ms=pack_stamps(millis), numbers=pack_numbers(np.array(numbers, np.float64)),
        text_values=texts,
    )  # fmt: skip
