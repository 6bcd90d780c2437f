"""Streams, values and locations of a device (spec §4, §7, §8)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from adapters.api.context import Call
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.rpc import call
from adapters.api.value_columns import (
    Columns,
    UpdatesBody,
    ValuesBody,
    bulk_columns,
    entries,
    number_columns,
    timestamp,
)
from m2x.runtime.errors import NotFound, ValidationFailed
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as pb

ACCEPTED = {"status": "accepted"}


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
def _streams(fields: FieldReader, values: Any) -> pb.ValueColumns:
    """The streams of an /updates body: stream name -> entries."""
    if not isinstance(values, Mapping) or not values:
        fields.fail("values", "not_present" if not values else "not_valid")
        return pb.ValueColumns()
    bulk = bulk_columns(values.items())
    if bulk is not None:
        return bulk
    columns = Columns()
    for name, raw in values.items():
        columns.add(str(name), entries(fields, raw, str(name), None), fields, str(name))
    return columns.message()


def read_location(fields: FieldReader, raw: Any, default_ts: int) -> pb.Location | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        fields.fail("location", "not_valid")
        return None
    reader = FieldReader(raw)
    location = pb.Location(
        name=reader.string("name"), timestamp_ms=timestamp(fields, raw, default_ts, "timestamp")
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


async def write_values(c: Call, values: pb.ValueColumns, location: pb.Location | None,
                       single: str = "") -> ApiResponse:  # fmt: skip
    try:
        await c.services.values.write(c.caller(), c.device_ref(), values, location)
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
    columns = Columns()
    columns.add(name, [(timestamp(fields, body, now_ms(), "timestamp"), body["value"])], fields, "value")  # fmt: skip
    fields.done()
    return await write_values(c, columns.message(), None, single=name)


def _plain_body(c: Call) -> Mapping[str, Any]:
    """The body as plain values, also when the route's type decoded it (see routes.Endpoint.
    body_type): the plain path checks everything and names each error."""
    if isinstance(c.request.body, msgspec.Struct):
        c.request.body = msgspec.to_builtins(c.request.body)
    return c.body_object()


async def post_values(c: Call) -> ApiResponse:
    name = c.params["stream"]
    if isinstance(c.request.body, ValuesBody):  # decoded by the route's type: the usual case
        typed = number_columns([(name, c.request.body.values)])
        if typed is not None:
            return await write_values(c, typed, None, single=name)
    body = _plain_body(c)
    fields = FieldReader(body)
    values = bulk_columns([(name, body.get("values"))])
    if values is None:
        columns = Columns()
        columns.add(name, entries(fields, body.get("values"), "values", None), fields, "values")
        values = columns.message()
    fields.done()
    return await write_values(c, values, None, single=name)


async def post_update(c: Call) -> ApiResponse:
    """One value per stream, all at one timestamp (spec §8.1)."""
    body = c.body_object()
    fields = FieldReader(body)
    ts = timestamp(fields, body, now_ms(), "timestamp")
    values = body.get("values")
    columns = Columns()
    if not isinstance(values, Mapping) or not values:
        fields.fail("values", "not_present" if not values else "not_valid")
    else:
        for name, value in values.items():
            columns.add(str(name), [(ts, value)], fields, str(name))
    location = read_location(fields, body.get("location"), ts)
    fields.done()
    return await write_values(c, columns.message(), location)


async def post_updates(c: Call) -> ApiResponse:
    """Many values per stream (spec §8.2)."""
    if isinstance(c.request.body, UpdatesBody):  # decoded by the route's type: the usual case
        values = number_columns(c.request.body.values.items())
        if values is not None:
            fields = FieldReader({})
            location = read_location(fields, c.request.body.location, now_ms())
            fields.done()
            return await write_values(c, values, location)
    body = _plain_body(c)
    fields = FieldReader(body)
    values = _streams(fields, body.get("values"))
    location = read_location(fields, body.get("location"), now_ms())
    fields.done()
    return await write_values(c, values, location)
