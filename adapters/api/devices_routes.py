"""Devices (spec §3, §5, §6): create, view, update, delete, list, search, catalog, tags,
metadata and the request log."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from adapters.api.context import Call
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from adapters.api.rpc import call
from adapters.api.triggers_routes import delete_triggers_of, trigger_counts
from m2x.runtime.errors import NotFound, ValidationFailed
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as pb

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_DEVICE_FIELDS = ("name", "description", "visibility", "status", "serial", "tags", "metadata")


def location_json(location: pb.Location) -> dict[str, Any]:
    return {
        "name": location.name or None,
        "latitude": location.latitude,
        "longitude": location.longitude,
        "elevation": location.elevation if location.HasField("elevation") else None,
        "timestamp": iso_ms(location.timestamp_ms),
    }


def device_json(c: Call, d: pb.Device, metadata: bool = False, triggers: int = 0) -> dict[str, Any]:
    """The public device object of spec §22.1 (`triggers`: its number of triggers)."""
    url = c.url(f"/v2/devices/{d.id}")
    body: dict[str, Any] = {
        "id": d.id,
        "url": url,
        "name": d.name,
        "description": d.description or None,
        "visibility": d.visibility,
        "status": d.status,
        "serial": d.serial or None,
        "tags": list(d.tags),
        "location": location_json(d.location) if d.HasField("location") else {},
        "streams": {"count": d.stream_count, "url": url + "/streams"},
        "triggers": {"count": triggers, "url": url + "/triggers"},
        "last_activity": iso_ms(d.last_activity_ms) if d.last_activity_ms else None,
        "created": iso_ms(d.created_ms),
        "updated": iso_ms(d.updated_ms),
    }
    if d.key:
        body["key"] = d.key
    if d.base_device:
        body["base_device"] = d.base_device
    if d.stream_values_json:
        body["streams"]["values"] = {k: orjson.loads(v) for k, v in d.stream_values_json.items()}
    if metadata:
        body["metadata"] = orjson.loads(d.metadata_json or "{}")
    return body


def _tags(fields: FieldReader) -> tuple[str, ...]:
    return fields.string_list("tags", split_commas=True)


def _spec(c: Call) -> tuple[pb.DeviceSpec, list[str]]:
    body = c.body_object()
    fields = FieldReader(body)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        fields.fail("metadata", "not_valid")
        metadata = None
    spec = pb.DeviceSpec(
        name=fields.string("name"), description=fields.string("description"),
        visibility=fields.string("visibility"), status=fields.string("status"),
        serial=fields.string("serial"), tags=_tags(fields),
        metadata_json=orjson.dumps(metadata or {}).decode(),
        base_device=fields.string("base_device"),
    )  # fmt: skip
    fields.done()
    return spec, [name for name in _DEVICE_FIELDS if name in body]


async def create_device(c: Call) -> ApiResponse:
    spec, _ = _spec(c)
    reply = await call(
        c.services.storage.CreateDevice, pb.CreateDeviceRequest(caller=c.caller(), spec=spec)
    )
    body = device_json(c, reply.device, metadata=True)
    return ApiResponse(201, body, headers={"Location": body["url"]})


async def view_device(c: Call) -> ApiResponse:
    request = pb.GetDeviceRequest(caller=c.caller(), device=c.device_ref(), read_only=True)
    reply = await call(c.services.storage.GetDevice, request)
    (count,) = await trigger_counts(c, [reply.device])
    return ApiResponse(200, device_json(c, reply.device, metadata=True, triggers=count))


async def update_device(c: Call) -> ApiResponse:
    spec, fields = _spec(c)
    request = pb.UpdateDeviceRequest(
        caller=c.caller(), device=c.device_ref(), spec=spec, fields=fields
    )
    await call(c.services.storage.UpdateDevice, request)
    return ApiResponse(204)


async def delete_device(c: Call) -> ApiResponse:
    device_id = c.params.get("device", "")
    if not device_id:  # a serial path: its triggers are found by the device's id
        request = pb.GetDeviceRequest(caller=c.caller(), device=c.device_ref())
        device_id = (await call(c.services.storage.GetDevice, request)).device.id
    await call(
        c.services.storage.DeleteDevice,
        pb.DeleteDeviceRequest(caller=c.caller(), device=c.device_ref()),
    )
    await delete_triggers_of(c, device_id)
    return ApiResponse(204)


def _query(params: Mapping[str, Any], fields: FieldReader) -> pb.DeviceQuery:
    """Search filters from the query string and/or a JSON body (clients use both)."""

    def csv(name: str) -> list[str]:
        return list(fields.string_list(name, split_commas=True))

    def json_of(name: str) -> str:
        value = params.get(name)
        if value is None:
            return ""
        if name == "location" and value == "none":
            return '"none"'
        if not isinstance(value, Mapping):
            fields.fail(name, "not_valid")
            return ""
        return orjson.dumps(value).decode()

    return pb.DeviceQuery(
        q=fields.string("q"), ids=csv("ids"), name=fields.string("name"),
        description=fields.string("description"), serials=csv("serial") + csv("serials"),
        tags=csv("tags"), status=fields.choice("status", ("enabled", "disabled"), ""),
        visibility=fields.choice("visibility", ("public", "private"), ""),
        modified_since_ms=fields.timestamp_ms("modified_since"),
        unmodified_since_ms=fields.timestamp_ms("unmodified_since"),
        streams_json=json_of("streams"), metadata_json=json_of("metadata"),
        location_json=json_of("location"),
    )  # fmt: skip


async def _list(c: Call, catalog: bool, search: bool) -> ApiResponse:
    params: dict[str, Any] = dict(c.request.query)
    if search:
        params.update(c.body_object())
    fields = FieldReader(params)
    page = fields.integer("page", 1, lo=1)
    limit = fields.integer("limit", DEFAULT_PAGE_SIZE, lo=0, hi=MAX_PAGE_SIZE)
    include = params.get("include_stream_values")
    names = (
        []
        if include in (None, "", "true", True)
        else list(fields.string_list("include_stream_values", True))
    )
    request = pb.ListDevicesRequest(
        caller=c.caller(), catalog=catalog, query=_query(params, fields), page=page,
        limit=limit or DEFAULT_PAGE_SIZE, sort=fields.string("sort"), dir=fields.string("dir"),
        include_stream_values=include not in (None, "false", False), stream_value_names=names,
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ListDevices, request)
    metadata = fields.flag("include_metadata") if "include_metadata" in params else False
    counts = await trigger_counts(c, reply.devices)
    devices = [device_json(c, d, metadata, n) for d, n in zip(reply.devices, counts, strict=True)]
    pages = math.ceil(reply.total / request.limit) if reply.total else 0
    body = {"devices": devices, "total": reply.total, "pages": pages, "limit": request.limit,
            "current_page": page}  # fmt: skip
    return ApiResponse(200, body, headers={"Link": _links(c, page, pages)} if pages else {})


def _links(c: Call, page: int, pages: int) -> str:
    query = {k: v for k, v in c.request.query.items() if k != "page"}

    def link(number: int, rel: str) -> str:
        return f'<{c.url(c.request.path)}?{urlencode({**query, "page": number})}>; rel="{rel}"'

    links = [link(1, "first"), link(pages, "last")]
    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < pages:
        links.append(link(page + 1, "next"))
    return ", ".join(links)


async def list_devices(c: Call) -> ApiResponse:
    return await _list(c, catalog=False, search=False)


async def search_devices(c: Call) -> ApiResponse:
    return await _list(c, catalog=False, search=True)


async def catalog(c: Call) -> ApiResponse:
    return await _list(c, catalog=True, search=False)


async def search_catalog(c: Call) -> ApiResponse:
    return await _list(c, catalog=True, search=True)


async def tags(c: Call) -> ApiResponse:
    reply = await call(
        c.services.storage.ListDeviceTags, pb.ListDeviceTagsRequest(caller=c.caller())
    )
    return ApiResponse(200, {"tags": dict(sorted(reply.tags.items()))})


async def get_metadata(c: Call) -> ApiResponse:
    request = pb.GetMetadataRequest(caller=c.caller(), device=c.device_ref())
    metadata = orjson.loads(
        (await call(c.services.storage.GetMetadata, request)).metadata_json or "{}"
    )
    field = c.params.get("field")
    if field is None:
        return ApiResponse(200, metadata)
    if field not in metadata:
        raise NotFound("Metadata Field", field)
    return ApiResponse(200, {"value": metadata[field]})


async def put_metadata(c: Call) -> ApiResponse:
    body = c.body_object()
    field = c.params.get("field", "")
    if field:
        if "value" not in body:
            raise ValidationFailed({"value": ["not_present"]})
        value: Any = body["value"]
    else:
        value = body
    request = pb.PutMetadataRequest(caller=c.caller(), device=c.device_ref(), field=field,
                                    metadata_json=orjson.dumps(value).decode())  # fmt: skip
    await call(c.services.storage.PutMetadata, request)
    return ApiResponse(204)


async def request_log(c: Call) -> ApiResponse:
    reply = await call(
        c.services.storage.ListRequestLog,
        pb.ListRequestLogRequest(caller=c.caller(), device=c.device_ref()),
    )
    entries = [
        {
            "timestamp": iso_ms(e.timestamp_ms),
            "status": e.status,
            "http_method": e.method,
            "method": e.method,
            "path": e.path,
        }
        for e in reply.entries
    ]
    return ApiResponse(200, {"requests": entries})


def routes() -> RouteTable:
    table = RouteTable()
    table.add("GET", "/v2/devices", list_devices, Access.MASTER)
    table.add("POST", "/v2/devices", create_device, Access.MASTER)
    table.add("GET", "/v2/devices/search", search_devices, Access.MASTER)
    table.add("POST", "/v2/devices/search", search_devices, Access.MASTER)
    table.add("GET", "/v2/devices/catalog", catalog, Access.PUBLIC)
    table.add("GET", "/v2/devices/catalog/search", search_catalog, Access.PUBLIC)
    table.add("POST", "/v2/devices/catalog/search", search_catalog, Access.PUBLIC)
    table.add("GET", "/v2/devices/tags", tags, Access.MASTER)
    table.add_device("GET", "", view_device, Access.DEVICE_READ)
    table.add_device("PUT", "", update_device, Access.MASTER)
    table.add_device("DELETE", "", delete_device, Access.MASTER)
    table.add_device("GET", "/metadata", get_metadata, Access.DEVICE_READ)
    table.add_device("PUT", "/metadata", put_metadata, Access.DEVICE)
    table.add_device("GET", "/metadata/{field}", get_metadata, Access.DEVICE_READ)
    table.add_device("PUT", "/metadata/{field}", put_metadata, Access.DEVICE)
    table.add_device("GET", "/log", request_log, Access.DEVICE)
    return table
