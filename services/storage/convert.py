"""Conversions between storage protos and the storage domain."""

from __future__ import annotations

from typing import Any

import orjson

from m2x.runtime.errors import ValidationFailed
from m2x.runtime.value_wire import unpack_numbers, unpack_stamps
from m2x.storage.v1 import storage_pb2 as pb
from services.storage.access import Caller
from services.storage.device_query import DeviceFilter
from services.storage.exports import Job
from services.storage.model import Device, DeviceSpec, Location, Stream, StreamSpec
from services.storage.series import StoredRow
from services.storage.state import State
from services.storage.streams import Incoming


def caller(message: pb.Caller) -> Caller:
    return Caller(message.account_id, message.key_kind, message.device_id, message.stream,
                  message.collection_id, message.distribution_id)  # fmt: skip


def json_object(text: str, field: str) -> Any:
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValidationFailed({field: ["not_valid"]}) from None


def device_spec(spec: pb.DeviceSpec) -> DeviceSpec:
    metadata = json_object(spec.metadata_json, "metadata")
    if not isinstance(metadata, dict):
        raise ValidationFailed({"metadata": ["not_valid"]})
    return DeviceSpec(spec.name, spec.description, spec.visibility, spec.status or "enabled",
                      spec.serial, tuple(spec.tags), metadata, spec.base_device)  # fmt: skip


def device_filter(query: pb.DeviceQuery) -> DeviceFilter:
    location = json_object(query.location_json, "location") if query.location_json else None
    return DeviceFilter(
        q=query.q, ids=tuple(query.ids), name=query.name, description=query.description,
        serials=tuple(query.serials), tags=tuple(query.tags), status=query.status,
        visibility=query.visibility, modified_since_ms=query.modified_since_ms,
        unmodified_since_ms=query.unmodified_since_ms,
        streams=json_object(query.streams_json, "streams"),
        metadata=json_object(query.metadata_json, "metadata"), location=location,
    )  # fmt: skip


def location_to_pb(location: Location) -> pb.Location:
    message = pb.Location(name=location.name, latitude=location.latitude,
                          longitude=location.longitude, timestamp_ms=location.timestamp_ms)  # fmt: skip
    if location.elevation is not None:
        message.elevation = location.elevation
    return message


def location_from_pb(message: pb.Location) -> Location:
    elevation = message.elevation if message.HasField("elevation") else None
    return Location(
        message.latitude, message.longitude, message.timestamp_ms, message.name, elevation
    )


def device_to_pb(device: Device, state: State, key: str = "", values: bool = False,
                 names: tuple[str, ...] = ()) -> pb.Device:  # fmt: skip
    s = device.spec
    streams = state.store.streams_of(device.id)
    message = pb.Device(
        id=device.id, account_id=device.account_id, name=s.name, description=s.description,
        visibility=s.visibility, status=s.status, serial=s.serial, tags=list(s.tags),
        metadata_json=orjson.dumps(s.metadata).decode(), base_device=s.base_device, key=key,
        stream_count=len(streams), last_activity_ms=state.activity.get(device.id, 0),
        created_ms=device.created_ms, updated_ms=device.updated_ms,
    )  # fmt: skip
    location = state.locations.get(device.id)
    if location is not None:
        message.location.CopyFrom(location_to_pb(location))
    if values:
        for name in streams:
            if names and name not in names:
                continue
            entry = state.latest.get((device.id, name))
            message.stream_values_json[name] = orjson.dumps(entry[1] if entry else None).decode()
    return message


def stream_spec(message: pb.StreamSpec) -> StreamSpec:
    return StreamSpec(message.type or "numeric", message.unit.label, message.unit.symbol,
                      message.display_name)  # fmt: skip


# public field of PutStreamRequest.fields -> StreamSpec field(s)
STREAM_FIELDS = {"type": ("type",), "unit": ("unit_label", "unit_symbol"),
                 "display_name": ("display_name",)}  # fmt: skip


def stream_to_pb(stream: Stream, state: State) -> pb.Stream:
    s = stream.spec
    message = pb.Stream(
        name=stream.name, display_name=s.display_name, type=s.type,
        unit=pb.Unit(label=s.unit_label, symbol=s.unit_symbol),
        created_ms=stream.created_ms, updated_ms=stream.updated_ms,
    )  # fmt: skip
    latest = state.latest.get((stream.device_id, stream.name))
    if latest is not None:
        message.has_value = True
        message.latest_value_at_ms = latest[0]
        if isinstance(latest[1], str):
            message.text = latest[1]
        else:
            message.number = latest[1]
    return message


def incoming(message: pb.ValueColumns) -> Incoming:
    """A write's value columns, checked for shape (the adapters send them well formed)."""
    streams, counts, texts = list(message.streams), list(message.counts), list(message.texts)
    text_count = sum(c for c, t in zip(counts, texts, strict=False) if t)
    total = sum(counts)
    if (
        len(counts) != len(streams) or len(texts) != len(streams) or len(set(streams)) != len(streams)
        or not all(counts) or len(message.timestamps_ms) != 8 * total
        or len(message.numbers) != 8 * (total - text_count) or len(message.text_values) != text_count
    ):  # fmt: skip
        raise ValidationFailed({"values": ["not_valid"]})
    return Incoming(
        streams, counts, texts, unpack_stamps(message.timestamps_ms),
        unpack_numbers(message.numbers), list(message.text_values),
    )  # fmt: skip


def value_to_pb(ts: int, value: float | str) -> pb.Value:
    if isinstance(value, str):
        return pb.Value(timestamp_ms=ts, text=value)
    return pb.Value(timestamp_ms=ts, number=value)


def value_range(message: pb.ValueRange) -> tuple[int, int, float | None, float | None]:
    lo = message.min if message.HasField("min") else None
    hi = message.max if message.HasField("max") else None
    return message.start_ms, message.end_ms, lo, hi


def job_to_pb(job: Job) -> pb.Job:
    return pb.Job(
        id=job.id, account_id=job.account_id, device_id=job.device_id, state=job.state,
        error=job.error, result_token=job.result_token, rows=job.rows, created_ms=job.created_ms,
        started_ms=job.started_ms, finished_ms=job.finished_ms, updated_ms=job.updated_ms,
    )  # fmt: skip


def stored_value_to_pb(row: StoredRow) -> pb.StoredValue:
    account_id, device_id, stream, ts, value, version = row
    message = pb.StoredValue(account_id=account_id, device_id=device_id, stream=stream,
                             timestamp_ms=ts, version=version)  # fmt: skip
    if isinstance(value, str):
        message.text = value
    else:
        message.number = value
    return message
