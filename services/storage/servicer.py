"""StorageService over gRPC: protos in, domain calls, protos out (errors mapped by interceptor)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson

from m2x.runtime.errors import DomainError, ValidationFailed
from m2x.runtime.grpc_server import StreamContext, UnaryContext
from m2x.runtime.grpc_status import to_status
from m2x.storage.v1 import storage_pb2 as pb
from m2x.storage.v1 import storage_pb2_grpc
from services.storage import convert
from services.storage.access import Caller, resolve
from services.storage.commands_feed import CommandsFeed
from services.storage.devices import Devices
from services.storage.exports import Exports
from services.storage.locations import Locations
from services.storage.model import Device, Location
from services.storage.request_log import RequestLog
from services.storage.state import State
from services.storage.streams import Incoming, Streams
from services.storage.value_feed import ValueFeed, WatcherLagged

logger = logging.getLogger(__name__)


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, state: State, devices: Devices, streams: Streams, locations: Locations,
                 log: RequestLog, exports: Exports, feed: ValueFeed,
                 commands: CommandsFeed | None = None) -> None:  # fmt: skip
        self.state = state
        self.devices = devices
        self.streams = streams
        self.locations = locations
        self.log = log
        self.exports = exports
        self.feed = feed
        self.commands = commands or CommandsFeed()

    def _device(
        self, request: Any, read_only: bool = False, master_only: bool = False
    ) -> tuple[Caller, Device]:
        caller = convert.caller(request.caller)
        ref = request.device
        device = resolve(self.state.store, caller, device_id=ref.id, serial=ref.serial,
                         read_only=read_only, master_only=master_only)  # fmt: skip
        return caller, device

    # devices
    async def CreateDevice(
        self,
        request: pb.CreateDeviceRequest,
        context: UnaryContext[pb.CreateDeviceRequest, pb.CreateDeviceResponse],
    ) -> pb.CreateDeviceResponse:
        caller = convert.caller(request.caller)
        device, key = await self.devices.create(caller, convert.device_spec(request.spec))
        return pb.CreateDeviceResponse(device=convert.device_to_pb(device, self.state, key))

    async def GetDevice(
        self,
        request: pb.GetDeviceRequest,
        context: UnaryContext[pb.GetDeviceRequest, pb.GetDeviceResponse],
    ) -> pb.GetDeviceResponse:
        caller, device = self._device(request, read_only=request.read_only)
        key = await self.devices.key_of(caller, device)
        message = convert.device_to_pb(device, self.state, key, request.include_stream_values)
        return pb.GetDeviceResponse(device=message)

    async def UpdateDevice(
        self,
        request: pb.UpdateDeviceRequest,
        context: UnaryContext[pb.UpdateDeviceRequest, pb.UpdateDeviceResponse],
    ) -> pb.UpdateDeviceResponse:
        caller, device = self._device(request, master_only=True)
        updated = await self.devices.update(
            caller, device, convert.device_spec(request.spec), list(request.fields)
        )
        return pb.UpdateDeviceResponse(device=convert.device_to_pb(updated, self.state))

    async def DeleteDevice(
        self,
        request: pb.DeleteDeviceRequest,
        context: UnaryContext[pb.DeleteDeviceRequest, pb.DeleteDeviceResponse],
    ) -> pb.DeleteDeviceResponse:
        caller, device = self._device(request, master_only=True)
        await self.devices.delete(caller, device)
        return pb.DeleteDeviceResponse()

    async def ListDevices(
        self,
        request: pb.ListDevicesRequest,
        context: UnaryContext[pb.ListDevicesRequest, pb.ListDevicesResponse],
    ) -> pb.ListDevicesResponse:
        caller = convert.caller(request.caller)
        page, total = self.devices.list(
            caller, request.catalog, convert.device_filter(request.query), request.page or 1,
            request.limit or 10, request.sort, request.dir,
        )  # fmt: skip
        keys: dict[str, str] = {}
        if caller.master and not request.catalog:
            keys = await self.devices.keys.device_keys(caller.account_id, [d.id for d in page])
        names = tuple(request.stream_value_names)
        devices = [
            convert.device_to_pb(
                d, self.state, keys.get(d.id, ""), request.include_stream_values, names
            )
            for d in page
        ]
        return pb.ListDevicesResponse(devices=devices, total=total)

    async def ListDeviceTags(
        self,
        request: pb.ListDeviceTagsRequest,
        context: UnaryContext[pb.ListDeviceTagsRequest, pb.ListDeviceTagsResponse],
    ) -> pb.ListDeviceTagsResponse:
        return pb.ListDeviceTagsResponse(tags=self.devices.tags(convert.caller(request.caller)))

    # streams
    async def PutStream(
        self,
        request: pb.PutStreamRequest,
        context: UnaryContext[pb.PutStreamRequest, pb.PutStreamResponse],
    ) -> pb.PutStreamResponse:
        caller, device = self._device(request)
        fields = [f for name in request.fields for f in convert.STREAM_FIELDS.get(name, ())]
        created, stream = await self.streams.put(
            caller, device, request.name, convert.stream_spec(request.spec), fields
        )
        return pb.PutStreamResponse(
            created=created, stream=convert.stream_to_pb(stream, self.state), device_id=device.id
        )

    async def GetStream(
        self,
        request: pb.GetStreamRequest,
        context: UnaryContext[pb.GetStreamRequest, pb.GetStreamResponse],
    ) -> pb.GetStreamResponse:
        caller, device = self._device(request, read_only=True)
        stream = self.streams.get(caller, device, request.name)
        return pb.GetStreamResponse(
            stream=convert.stream_to_pb(stream, self.state), device_id=device.id
        )

    async def ListStreams(
        self,
        request: pb.ListStreamsRequest,
        context: UnaryContext[pb.ListStreamsRequest, pb.ListStreamsResponse],
    ) -> pb.ListStreamsResponse:
        caller, device = self._device(request, read_only=True)
        streams = [convert.stream_to_pb(s, self.state) for s in self.streams.list(caller, device)]
        return pb.ListStreamsResponse(streams=streams, device_id=device.id)

    async def DeleteStream(
        self,
        request: pb.DeleteStreamRequest,
        context: UnaryContext[pb.DeleteStreamRequest, pb.DeleteStreamResponse],
    ) -> pb.DeleteStreamResponse:
        caller, device = self._device(request)
        await self.streams.delete(caller, device, request.name)
        return pb.DeleteStreamResponse()

    # values
    async def WriteValues(
        self,
        request: pb.WriteValuesRequest,
        context: UnaryContext[pb.WriteValuesRequest, pb.WriteValuesResponse],
    ) -> pb.WriteValuesResponse:
        return pb.WriteValuesResponse(stored=await self._write(request))

    async def WriteValuesBatch(
        self,
        request: pb.WriteValuesBatchRequest,
        context: UnaryContext[pb.WriteValuesBatchRequest, pb.WriteValuesBatchResponse],
    ) -> pb.WriteValuesBatchResponse:
        # Every write is checked on its own and answered on its own; the valid ones are
        # stored together (Streams.write_many), not by a task each.
        outcomes: list[int | Exception] = [0] * len(request.writes)
        accepted: list[int] = []
        writes = []
        for index, write in enumerate(request.writes):
            try:
                writes.append(self._write_of(write))
                accepted.append(index)
            except Exception as exc:
                outcomes[index] = exc
        if writes:
            for index, outcome in zip(accepted, await self.streams.write_many(writes), strict=True):
                outcomes[index] = outcome
        results = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                if not isinstance(outcome, DomainError):
                    logger.error("write in a batch failed", exc_info=outcome)
                    outcome = DomainError("internal error")
                results.append(pb.WriteValuesResult(error=to_status(outcome)))
            else:
                results.append(pb.WriteValuesResult(stored=outcome))
        return pb.WriteValuesBatchResponse(results=results)

    async def _write(self, request: pb.WriteValuesRequest) -> int:
        return await self.streams.write(*self._write_of(request))

    def _write_of(self, request: pb.WriteValuesRequest) -> tuple[Caller, Device, Incoming, Location | None]:  # fmt: skip
        """The write a request asks for, as Streams takes it; DomainError if it may not."""
        caller, device = self._device(request)
        location = (
            convert.location_from_pb(request.location) if request.HasField("location") else None
        )
        return caller, device, convert.incoming(request.values), location

    async def ListValues(
        self,
        request: pb.ListValuesRequest,
        context: UnaryContext[pb.ListValuesRequest, pb.ListValuesResponse],
    ) -> pb.ListValuesResponse:
        caller, device = self._device(request, read_only=True)
        start, end, lo, hi = convert.value_range(request.range)
        stream, rows = await self.streams.values(
            caller, device, request.stream, start, end, lo, hi, request.limit,
            request.sort or "timestamp", request.dir or "desc",
        )  # fmt: skip
        return pb.ListValuesResponse(
            values=[convert.value_to_pb(t, v) for t, v in rows], type=stream.spec.type
        )

    async def DeleteValues(
        self,
        request: pb.DeleteValuesRequest,
        context: UnaryContext[pb.DeleteValuesRequest, pb.DeleteValuesResponse],
    ) -> pb.DeleteValuesResponse:
        caller, device = self._device(request)
        await self.streams.delete_values(
            caller, device, request.stream, request.from_ms, request.end_ms
        )
        return pb.DeleteValuesResponse()

    async def SampleValues(
        self,
        request: pb.SampleValuesRequest,
        context: UnaryContext[pb.SampleValuesRequest, pb.SampleValuesResponse],
    ) -> pb.SampleValuesResponse:
        caller, device = self._device(request, read_only=True)
        start, end, lo, hi = convert.value_range(request.range)
        rows = await self.streams.sample(
            caller,
            device,
            request.stream,
            request.type or "nth",
            request.interval,
            start,
            end,
            lo,
            hi,
            request.limit,
        )
        return pb.SampleValuesResponse(values=[convert.value_to_pb(t, v) for t, v in rows])

    async def StreamStats(
        self,
        request: pb.StreamStatsRequest,
        context: UnaryContext[pb.StreamStatsRequest, pb.StreamStatsResponse],
    ) -> pb.StreamStatsResponse:
        caller, device = self._device(request, read_only=True)
        start, end, lo, hi = convert.value_range(request.range)
        stats = await self.streams.stats(caller, device, request.stream, start, end, lo, hi)
        return pb.StreamStatsResponse(**{k: v for k, v in stats.items() if v is not None})

    async def ListDeviceValues(
        self,
        request: pb.ListDeviceValuesRequest,
        context: UnaryContext[pb.ListDeviceValuesRequest, pb.ListDeviceValuesResponse],
    ) -> pb.ListDeviceValuesResponse:
        caller, device = self._device(request, read_only=True)
        conditions = []
        for c in request.conditions:
            if c.op not in ("gt", "gte", "lt", "lte", "eq", "match"):
                raise ValidationFailed({"conditions": ["not_valid"]})
            conditions.append((c.stream, c.op, c.text if c.op == "match" else c.number))
        rows = await self.streams.device_rows(
            caller,
            device,
            list(request.streams),
            request.start_ms,
            request.end_ms,
            request.limit,
            conditions,
        )
        return pb.ListDeviceValuesResponse(rows=[
            pb.DeviceValuesRow(timestamp_ms=ts, values={k: convert.value_to_pb(ts, v) for k, v in values.items()})
            for ts, values in rows
        ])  # fmt: skip

    # location
    async def GetLocation(
        self,
        request: pb.GetLocationRequest,
        context: UnaryContext[pb.GetLocationRequest, pb.GetLocationResponse],
    ) -> pb.GetLocationResponse:
        _, device = self._device(request, read_only=True)
        location, waypoints = await self.locations.current(device)
        reply = pb.GetLocationResponse(waypoints=[convert.location_to_pb(w) for w in waypoints])
        if location is not None:
            reply.location.CopyFrom(convert.location_to_pb(location))
        return reply

    async def ListWaypoints(
        self,
        request: pb.ListWaypointsRequest,
        context: UnaryContext[pb.ListWaypointsRequest, pb.ListWaypointsResponse],
    ) -> pb.ListWaypointsResponse:
        _, device = self._device(request, read_only=True)
        waypoints = await self.locations.history(
            device, request.start_ms, request.end_ms, request.limit
        )
        return pb.ListWaypointsResponse(waypoints=[convert.location_to_pb(w) for w in waypoints])

    async def DeleteWaypoints(
        self,
        request: pb.DeleteWaypointsRequest,
        context: UnaryContext[pb.DeleteWaypointsRequest, pb.DeleteWaypointsResponse],
    ) -> pb.DeleteWaypointsResponse:
        _, device = self._device(request)
        await self.locations.delete(device, request.from_ms, request.end_ms)
        return pb.DeleteWaypointsResponse()

    # metadata
    async def GetMetadata(
        self,
        request: pb.GetMetadataRequest,
        context: UnaryContext[pb.GetMetadataRequest, pb.GetMetadataResponse],
    ) -> pb.GetMetadataResponse:
        _, device = self._device(request, read_only=True)
        return pb.GetMetadataResponse(metadata_json=orjson.dumps(device.spec.metadata).decode())

    async def PutMetadata(
        self,
        request: pb.PutMetadataRequest,
        context: UnaryContext[pb.PutMetadataRequest, pb.PutMetadataResponse],
    ) -> pb.PutMetadataResponse:
        caller, device = self._device(request)
        value = convert.json_object(request.metadata_json, request.field or "metadata")
        await self.devices.put_metadata(caller, device, request.field, value)
        return pb.PutMetadataResponse()

    # exports
    async def ExportValues(
        self,
        request: pb.ExportValuesRequest,
        context: UnaryContext[pb.ExportValuesRequest, pb.ExportValuesResponse],
    ) -> pb.ExportValuesResponse:
        caller, device = self._device(request, read_only=True)
        reachable = {s.name for s in self.streams.list(caller, device)}
        missing = [n for n in request.streams if n not in reachable]
        if missing:
            raise ValidationFailed({n: ["Stream not found"] for n in missing})
        # A stream-restricted key exports only its stream, never "all streams".
        names = list(request.streams) or ([caller.stream] if caller.stream else [])
        job = await self.exports.create(
            device, names, request.start_ms, request.end_ms, request.limit,
            request.include_location,
        )  # fmt: skip
        return pb.ExportValuesResponse(job=convert.job_to_pb(job))

    async def GetJob(
        self, request: pb.GetJobRequest, context: UnaryContext[pb.GetJobRequest, pb.GetJobResponse]
    ) -> pb.GetJobResponse:
        job = self.exports.get(convert.caller(request.caller), request.id)
        return pb.GetJobResponse(job=convert.job_to_pb(job))

    async def ListJobs(
        self,
        request: pb.ListJobsRequest,
        context: UnaryContext[pb.ListJobsRequest, pb.ListJobsResponse],
    ) -> pb.ListJobsResponse:
        jobs, total = self.exports.list(
            convert.caller(request.caller),
            request.state,
            request.device_id,
            request.page or 1,
            request.limit or 10,
        )
        return pb.ListJobsResponse(jobs=[convert.job_to_pb(j) for j in jobs], total=total)

    async def ReadExport(
        self,
        request: pb.ReadExportRequest,
        context: StreamContext[pb.ReadExportRequest, pb.ReadExportResponse],
    ) -> AsyncIterator[pb.ReadExportResponse]:
        async for chunk in self.exports.read(request.token):
            yield pb.ReadExportResponse(chunk=chunk)

    # value feed
    async def WatchValues(
        self,
        request: pb.WatchValuesRequest,
        context: StreamContext[pb.WatchValuesRequest, pb.WatchValuesResponse],
    ) -> AsyncIterator[pb.WatchValuesResponse]:
        devices = [(d.account_id, d.device_id) for d in request.devices]
        try:
            async for rows, caught_up in self.feed.watch(devices, request.after_version):
                yield pb.WatchValuesResponse(
                    values=[convert.stored_value_to_pb(r) for r in rows], caught_up=caught_up
                )
        except WatcherLagged:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "watcher fell behind; resume from the last version",
            )

    # request log
    async def AppendRequestLog(
        self,
        request: pb.AppendRequestLogRequest,
        context: UnaryContext[pb.AppendRequestLogRequest, pb.AppendRequestLogResponse],
    ) -> pb.AppendRequestLogResponse:
        await self.log.append(list(request.entries))
        return pb.AppendRequestLogResponse()

    async def ListRequestLog(
        self,
        request: pb.ListRequestLogRequest,
        context: UnaryContext[pb.ListRequestLogRequest, pb.ListRequestLogResponse],
    ) -> pb.ListRequestLogResponse:
        _, device = self._device(request)
        return pb.ListRequestLogResponse(entries=await self.log.list(device))

    # commands on their way to devices
    async def WatchCommands(
        self,
        request: pb.WatchCommandsRequest,
        context: StreamContext[pb.WatchCommandsRequest, pb.CommandDelivery],
    ) -> AsyncIterator[pb.CommandDelivery]:
        with self.commands.subscribe() as deliveries:
            await context.send_initial_metadata(())  # tells the watcher it is registered
            async for d in deliveries:
                yield pb.CommandDelivery(
                    device_id=d.device_id, device_key=d.device_key, id=d.id, name=d.name,
                    data_json=d.data_json, sent_at_ms=d.sent_at_ms,
                )  # fmt: skip
