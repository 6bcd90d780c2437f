"""Reading values back (spec §7.8-§7.11, §8.3-§8.4) and device locations (spec §4)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from adapters.api import values_routes as v
from adapters.api.context import Call
from adapters.api.devices_routes import location_json
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, Handler, RouteTable
from adapters.api.rpc import call
from adapters.api.value_columns import UpdatesBody, ValuesBody
from adapters.api.values_routes import ACCEPTED, now_ms, read_location, value_of, write_values
from m2x.runtime.timefmt import iso_ms, iso_ms_many
from m2x.storage.v1 import storage_pb2 as pb

CSV = "text/csv"
FORMATS = {"": None, ".json": "json", ".msgpack": "msgpack", ".csv": "csv"}


def _params(c: Call, with_body: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = dict(c.request.query)
    if with_body or c.request.method in ("GET", "HEAD", "DELETE"):
        # Clients send search and range parameters as a JSON body, even on GET and DELETE.
        body = c.request.body
        if isinstance(body, Mapping):
            params.update(body)
    return params


def _range(fields: FieldReader) -> pb.ValueRange:
    value_range = pb.ValueRange(
        start_ms=fields.timestamp_ms("start"), end_ms=fields.timestamp_ms("end")
    )
    for name in ("min", "max"):
        number = fields.number(name)
        if number is not None:
            setattr(value_range, name, number)
    return value_range


def _shaped(
    body: dict[str, Any], fmt: str | None, header: list[str], rows: list[list[Any]]
) -> ApiResponse:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return ApiResponse(200, out.getvalue(), content_type=CSV)
    return ApiResponse(200, body, format=fmt)


def _points(values: Sequence[pb.Value]) -> list[dict[str, Any]]:
    stamps = iso_ms_many([v.timestamp_ms for v in values])
    return [{"timestamp": at, "value": value_of(v)} for at, v in zip(stamps, values, strict=True)]


def _echo(fields: FieldReader, body: dict[str, Any], value_range: pb.ValueRange) -> None:
    if value_range.start_ms:
        body["start"] = iso_ms(value_range.start_ms)
    if value_range.end_ms:
        body["end"] = iso_ms(value_range.end_ms)


def with_format(
    handler: Callable[[Call, str | None], Awaitable[ApiResponse]], suffix: str
) -> Handler:
    async def handle(c: Call) -> ApiResponse:
        return await handler(c, FORMATS[suffix])

    return handle


async def list_values(c: Call, fmt: str | None) -> ApiResponse:
    fields = FieldReader(_params(c))
    value_range = _range(fields)
    limit = fields.integer("limit", 100, lo=1)
    request = pb.ListValuesRequest(
        caller=c.caller(), device=c.device_ref(), stream=c.params["stream"], range=value_range,
        limit=limit, sort=fields.choice("sort", ("timestamp", "value"), "timestamp"),
        dir=fields.choice("dir", ("asc", "desc"), "desc"),
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ListValues, request)
    values = _points(reply.values)
    body: dict[str, Any] = {}
    _echo(fields, body, value_range)
    body.update({"limit": limit, "values": values})
    rows = [[v["timestamp"], v["value"]] for v in values]
    return _shaped(body, fmt, ["timestamp", "value"], rows)


async def delete_values(c: Call) -> ApiResponse:
    fields = FieldReader(_params(c))
    start, end = fields.timestamp_ms("from"), fields.timestamp_ms("end")
    for name, value in (("from", start), ("end", end)):
        if not value and name not in fields.errors:
            fields.fail(name, "not_present")
    fields.done()
    request = pb.DeleteValuesRequest(caller=c.caller(), device=c.device_ref(), stream=c.params["stream"],
                                     from_ms=start, end_ms=end)  # fmt: skip
    await call(c.services.storage.DeleteValues, request)
    return ApiResponse(204)


async def sampling(c: Call, fmt: str | None) -> ApiResponse:
    fields = FieldReader(_params(c))
    value_range = _range(fields)
    if "interval" not in fields.body:
        fields.fail("interval", "not_present")
    interval = fields.integer("interval", 0, lo=1)
    request = pb.SampleValuesRequest(
        caller=c.caller(), device=c.device_ref(), stream=c.params["stream"],
        type=fields.choice("type", ("nth", "min", "max", "count", "avg", "sum", "stddev"), "nth"),
        interval=interval, range=value_range, limit=fields.integer("limit", 100, lo=1),
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.SampleValues, request)
    values = _points(reply.values)
    body: dict[str, Any] = {}
    _echo(fields, body, value_range)
    body.update({"interval": interval, "values": values})
    return _shaped(
        body, fmt, ["timestamp", "value"], [[v["timestamp"], v["value"]] for v in values]
    )


async def stats(c: Call) -> ApiResponse:
    fields = FieldReader(_params(c))
    value_range = _range(fields)
    fields.done()
    request = pb.StreamStatsRequest(caller=c.caller(), device=c.device_ref(), stream=c.params["stream"],
                                    range=value_range)  # fmt: skip
    reply = await call(c.services.storage.StreamStats, request)
    numbers = {
        name: getattr(reply, name) if reply.HasField(name) else None
        for name in ("min", "max", "avg", "stddev")
    }
    body: dict[str, Any] = {}
    _echo(fields, body, value_range)
    body["stats"] = {"count": reply.count, **numbers}
    return ApiResponse(200, body)


def _conditions(fields: FieldReader, raw: Any) -> list[pb.Condition]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        fields.fail("conditions", "not_valid")
        return []
    conditions = []
    for stream, ops in raw.items():
        if not isinstance(ops, Mapping) or not ops:
            fields.fail("conditions", "not_valid")
            continue
        for op, operand in ops.items():
            if op not in ("gt", "gte", "lt", "lte", "eq", "match") or isinstance(
                operand, bool | dict | list
            ):
                fields.fail("conditions", "not_valid")
            elif op == "match":
                conditions.append(pb.Condition(stream=str(stream), op=op, text=str(operand)))
            elif not isinstance(operand, int | float):
                fields.fail("conditions", "not_numeric")
            else:
                conditions.append(pb.Condition(stream=str(stream), op=op, number=float(operand)))
    return conditions


async def device_values(c: Call, fmt: str | None, search: bool = False) -> ApiResponse:
    params = _params(c, with_body=search)
    fields = FieldReader(params)
    streams = params.get("streams")
    names = (
        list(streams)
        if isinstance(streams, list)
        else list(fields.string_list("streams", split_commas=True))
    )
    limit = fields.integer("limit", 100, lo=1)
    request = pb.ListDeviceValuesRequest(
        caller=c.caller(), device=c.device_ref(), streams=[str(n) for n in names],
        start_ms=fields.timestamp_ms("start"), end_ms=fields.timestamp_ms("end"), limit=limit,
        conditions=_conditions(fields, params.get("conditions")) if search else [],
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ListDeviceValues, request)
    stamps = iso_ms_many([r.timestamp_ms for r in reply.rows])
    rows = [
        {"timestamp": at, "values": {k: value_of(v) for k, v in sorted(r.values.items())}}
        for at, r in zip(stamps, reply.rows, strict=True)
    ]
    body: dict[str, Any] = {}
    if request.start_ms:
        body["start"] = iso_ms(request.start_ms)
    if request.end_ms:
        body["end"] = iso_ms(request.end_ms)
    body.update({"limit": limit, "values": rows})
    columns = sorted({name for row in rows for name in row["values"]})
    table = [[row["timestamp"], *(row["values"].get(n, "") for n in columns)] for row in rows]
    return _shaped(body, fmt, ["timestamp", *columns], table)


async def search_values(c: Call, fmt: str | None) -> ApiResponse:
    return await device_values(c, fmt, search=True)


# location
async def get_location(c: Call) -> ApiResponse:
    reply = await call(
        c.services.storage.GetLocation,
        pb.GetLocationRequest(caller=c.caller(), device=c.device_ref()),
    )
    if not reply.HasField("location"):
        return ApiResponse(204)
    body = location_json(reply.location)
    body["waypoints"] = [location_json(w) for w in reply.waypoints]
    return ApiResponse(200, body)


async def put_location(c: Call) -> ApiResponse:
    fields = FieldReader({})
    location = read_location(fields, c.body_object(), now_ms())
    fields.done()
    return await write_values(c, pb.ValueColumns(), location)


async def waypoints(c: Call) -> ApiResponse:
    fields = FieldReader(_params(c))
    request = pb.ListWaypointsRequest(
        caller=c.caller(), device=c.device_ref(), start_ms=fields.timestamp_ms("start"),
        end_ms=fields.timestamp_ms("end"), limit=fields.integer("limit", 30, lo=1),
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ListWaypoints, request)
    return ApiResponse(200, {"waypoints": [location_json(w) for w in reply.waypoints]})


async def delete_waypoints(c: Call) -> ApiResponse:
    fields = FieldReader(_params(c))
    start, end = fields.timestamp_ms("from"), fields.timestamp_ms("end")
    fields.done()
    request = pb.DeleteWaypointsRequest(
        caller=c.caller(), device=c.device_ref(), from_ms=start, end_ms=end
    )
    await call(c.services.storage.DeleteWaypoints, request)
    return ApiResponse(202, ACCEPTED)


def routes() -> RouteTable:
    table = RouteTable()
    table.add_device("GET", "/streams", v.list_streams, Access.DEVICE_READ)
    table.add_device("PUT", "/streams/{stream}", v.put_stream, Access.DEVICE)
    table.add_device("GET", "/streams/{stream}", v.view_stream, Access.DEVICE_READ)
    table.add_device("DELETE", "/streams/{stream}", v.delete_stream, Access.DEVICE)
    table.add_device("PUT", "/streams/{stream}/value", v.put_value, Access.DEVICE)
    table.add_device("POST", "/streams/{stream}/values", v.post_values, Access.DEVICE,
                     body_type=ValuesBody)  # fmt: skip
    table.add_device("DELETE", "/streams/{stream}/values", delete_values, Access.DEVICE)
    for suffix in FORMATS:
        table.add_device(
            "GET",
            f"/streams/{{stream}}/values{suffix}",
            with_format(list_values, suffix),
            Access.DEVICE_READ,
        )
        table.add_device(
            "GET", f"/values{suffix}", with_format(device_values, suffix), Access.DEVICE_READ
        )
        if suffix != ".csv":
            table.add_device(
                "GET",
                f"/streams/{{stream}}/sampling{suffix}",
                with_format(sampling, suffix),
                Access.DEVICE_READ,
            )
            for method in ("GET", "POST"):
                table.add_device(
                    method,
                    f"/values/search{suffix}",
                    with_format(search_values, suffix),
                    Access.DEVICE_READ,
                )
    table.add_device("GET", "/streams/{stream}/stats", stats, Access.DEVICE_READ)
    table.add_device("POST", "/update", v.post_update, Access.DEVICE)
    table.add_device("POST", "/updates", v.post_updates, Access.DEVICE, body_type=UpdatesBody)
    table.add_device("GET", "/location", get_location, Access.DEVICE_READ)
    table.add_device("PUT", "/location", put_location, Access.DEVICE)
    table.add_device("GET", "/location/waypoints", waypoints, Access.DEVICE_READ)
    table.add_device("DELETE", "/location/waypoints", delete_waypoints, Access.DEVICE)
    return table
