"""Streams, values and locations of a device (spec §4, §7, §8)."""

from __future__ import annotations

import operator
import time
from collections.abc import Iterable, Mapping
from typing import Any

from adapters.api.context import Call
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.rpc import call
from m2x.runtime.errors import NotFound, ValidationFailed
from m2x.runtime.timefmt import iso_ms, parse_iso, parse_iso_many
from m2x.storage.v1 import storage_pb2 as pb

ACCEPTED = {"status": "accepted"}
MAX_VALUES = 10_000  # per stream per request
_TIMESTAMP, _VALUE = operator.itemgetter("timestamp"), operator.itemgetter("value")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def value_of(v: pb.Value) -> float | str:
    return v.text if v.WhichOneof("value") == "text" else v.number


def stream_json(c: Call, device_id: str, s: pb.Stream) -> dict[str, Any]:
    return {
        "name": s.name,
        "display_name": s.display_name or None,
        "type": s.type,
        "value": (s.text if s.type == "alphanumeric" else s.number) if s.has_value else None,
        "latest_value_at": iso_ms(s.latest_value_at_ms) if s.has_value else None,
        "unit": {"label": s.unit.label or None, "symbol": s.unit.symbol or None},
        "url": c.url(f"/v2/devices/{device_id}/streams/{s.name}"),
        "created": iso_ms(s.created_ms),
        "updated": iso_ms(s.updated_ms),
    }


# streams
async def list_streams(c: Call) -> ApiResponse:
    reply = await call(
        c.services.storage.ListStreams,
        pb.ListStreamsRequest(caller=c.caller(), device=c.device_ref()),
    )
    return ApiResponse(
        200, {"streams": [stream_json(c, reply.device_id, s) for s in reply.streams]}
    )


async def put_stream(c: Call) -> ApiResponse:
    body = c.body_object()
    fields = FieldReader(body)
    unit = body.get("unit") or {}
    if not isinstance(unit, Mapping):
        fields.fail("unit", "not_valid")
        unit = {}
    unit_fields = FieldReader(unit)
    spec = pb.StreamSpec(
        type=fields.string("type"), display_name=fields.string("display_name"),
        unit=pb.Unit(label=unit_fields.string("label"), symbol=unit_fields.string("symbol")),
    )  # fmt: skip
    if unit_fields.errors:
        fields.fail("unit", "not_valid")
    fields.done()
    request = pb.PutStreamRequest(caller=c.caller(), device=c.device_ref(), name=c.params["stream"], spec=spec,
                                  fields=[f for f in ("type", "unit", "display_name") if f in body])  # fmt: skip
    reply = await call(c.services.storage.PutStream, request)
    if not reply.created:
        return ApiResponse(204)
    body = stream_json(c, reply.device_id, reply.stream)
    return ApiResponse(201, body, headers={"Location": body["url"]})


async def view_stream(c: Call) -> ApiResponse:
    request = pb.GetStreamRequest(caller=c.caller(), device=c.device_ref(), name=c.params["stream"])
    reply = await call(c.services.storage.GetStream, request)
    return ApiResponse(200, stream_json(c, reply.device_id, reply.stream))


async def delete_stream(c: Call) -> ApiResponse:
    request = pb.DeleteStreamRequest(
        caller=c.caller(), device=c.device_ref(), name=c.params["stream"]
    )
    await call(c.services.storage.DeleteStream, request)
    return ApiResponse(204)


# writes
def _timestamp(
    fields: FieldReader, entry: Mapping[str, Any], default: int | None, where: str
) -> int:
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


def _column(
    name: str, entries: list[tuple[int, Any]], fields: FieldReader, where: str
) -> pb.StreamValues:
    """Values of one stream as columns: numbers when all are numbers, texts otherwise."""
    part = pb.StreamValues(stream=name, timestamps_ms=[t for t, _ in entries])
    values = [v for _, v in entries]
    kinds = set(map(type, values))  # what JSON bodies hold, decided without a loop per value
    if kinds <= {float, int}:
        part.numbers.extend(map(float, values))
    elif kinds == {str}:
        part.texts.extend(values)
    elif any(isinstance(v, bool) or not isinstance(v, int | float | str) for v in values):
        fields.fail(where, "not_valid")
    elif all(isinstance(v, int | float) for v in values):
        part.numbers.extend(float(v) for v in values)
    else:
        part.texts.extend(v if isinstance(v, str) else repr(v) for v in values)
    return part


def _entries(
    fields: FieldReader, raw: Any, where: str, default_ts: int | None
) -> list[tuple[int, Any]]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_VALUES:
        fields.fail(where, "not_present" if not raw else "not_valid")
        return []
    entries = []
    for entry in raw:
        if not isinstance(entry, Mapping) or "value" not in entry:
            fields.fail(where, "not_valid")
            return []
        entries.append((_timestamp(fields, entry, default_ts, where), entry["value"]))
    return entries


def _bulk_columns(columns: Iterable[tuple[Any, Any]]) -> list[pb.StreamValues] | None:
    """Streams of well-formed entry lists, all timestamps converted at once; None when anything
    is not, for the exact per-value path (_entries and _column) to find every error."""
    names, stamps, values = [], [], []
    try:
        for name, raw in columns:
            if type(raw) is not list or not raw or len(raw) > MAX_VALUES:
                return None
            # TypeError when an entry is not an object, KeyError when a field is missing.
            stamps += map(_TIMESTAMP, raw)
            values.append(list(map(_VALUE, raw)))
            names.append(str(name))
        millis = parse_iso_many(stamps)
    except (KeyError, TypeError, ValueError):
        return None
    parts, end = [], 0
    for name, column in zip(names, values, strict=True):
        start, end = end, end + len(column)
        kinds = set(map(type, column))  # exact types: a bool is not a number here
        if kinds == {float}:
            part = pb.StreamValues(stream=name, timestamps_ms=millis[start:end], numbers=column)
        elif kinds <= {int, float}:
            numbers = list(map(float, column))
            part = pb.StreamValues(stream=name, timestamps_ms=millis[start:end], numbers=numbers)
        elif kinds == {str}:
            part = pb.StreamValues(stream=name, timestamps_ms=millis[start:end], texts=column)
        else:
            return None
        parts.append(part)
    return parts


def _streams(fields: FieldReader, values: Any) -> list[pb.StreamValues]:
    """The streams of an /updates body: stream name -> entries."""
    if not isinstance(values, Mapping) or not values:
        fields.fail("values", "not_present" if not values else "not_valid")
        return []
    parts = _bulk_columns(values.items())
    if parts is None:
        parts = [
            _column(str(name), _entries(fields, raw, str(name), None), fields, str(name))
            for name, raw in values.items()
        ]
    return parts


def read_location(fields: FieldReader, raw: Any, default_ts: int) -> pb.Location | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        fields.fail("location", "not_valid")
        return None
    reader = FieldReader(raw)
    location = pb.Location(
        name=reader.string("name"), timestamp_ms=_timestamp(fields, raw, default_ts, "timestamp")
    )
    for name in ("latitude", "longitude"):
        number = reader.number(name)
        if number is None:
            fields.fail(name, "not_present" if name not in reader.errors else "not_valid")
        setattr(location, name, number or 0.0)
    elevation = reader.number("elevation")
    if elevation is not None:
        location.elevation = elevation
    if "elevation" in reader.errors:
        fields.fail("elevation", "not_valid")
    return location


async def write_values(c: Call, streams: list[pb.StreamValues], location: pb.Location | None,
                 single: str = "") -> ApiResponse:  # fmt: skip
    try:
        await c.services.values.write(c.caller(), c.device_ref(), streams, location)
    except ValidationFailed as exc:
        if single and exc.fields.get(single) == ["Stream not found"]:
            raise NotFound("Stream", single) from None
        if single and single in exc.fields:
            raise ValidationFailed({"value": exc.fields[single]}) from None
        raise
    return ApiResponse(202, ACCEPTED)


async def put_value(c: Call) -> ApiResponse:
    body = c.body_object()
    fields = FieldReader(body)
    name = c.params["stream"]
    if "value" not in body:
        fields.fail("value", "not_present")
        fields.done()
    entries = [(_timestamp(fields, body, now_ms(), "timestamp"), body["value"])]
    part = _column(name, entries, fields, "value")
    fields.done()
    return await write_values(c, [part], None, single=name)


async def post_values(c: Call) -> ApiResponse:
    body = c.body_object()
    fields = FieldReader(body)
    name = c.params["stream"]
    parts = _bulk_columns([(name, body.get("values"))])
    if parts is None:
        raw = body.get("values")
        parts = [_column(name, _entries(fields, raw, "values", None), fields, "values")]
    fields.done()
    return await write_values(c, parts, None, single=name)


async def post_update(c: Call) -> ApiResponse:
    """One value per stream, all at one timestamp (spec §8.1)."""
    body = c.body_object()
    fields = FieldReader(body)
    ts = _timestamp(fields, body, now_ms(), "timestamp")
    values = body.get("values")
    parts = []
    if not isinstance(values, Mapping) or not values:
        fields.fail("values", "not_present" if not values else "not_valid")
    else:
        parts = [
            _column(str(name), [(ts, value)], fields, str(name)) for name, value in values.items()
        ]
    location = read_location(fields, body.get("location"), ts)
    fields.done()
    return await write_values(c, parts, location)


async def post_updates(c: Call) -> ApiResponse:
    """Many values per stream (spec §8.2)."""
    body = c.body_object()
    fields = FieldReader(body)
    parts = _streams(fields, body.get("values"))
    location = read_location(fields, body.get("location"), now_ms())
    fields.done()
    return await write_values(c, parts, location)
