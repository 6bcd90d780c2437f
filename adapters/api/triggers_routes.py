"""Device triggers (spec §10, seed 001): list, create, view, update, test, delete, the log.

The storage service resolves the device (serials, account, device-key scope) and the triggers
service does the rest; distribution routes arrive with distributions and call the same RPCs
with a distribution owner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
import orjson

from adapters.api.context import Call
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from adapters.api.rpc import call
from m2x.runtime.errors import Unavailable
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as spb
from m2x.triggers.v1 import triggers_pb2 as pb

logger = logging.getLogger(__name__)

PAYLOAD_VERSION = 2


def _triggers(c: Call) -> Any:
    if c.services.triggers is None:  # an adapter started without a triggers address
        raise Unavailable("triggers service not configured")
    return c.services.triggers


async def _owner(c: Call) -> pb.Owner:
    """The device of the path, if the caller reaches it (404/403 as storage decides)."""
    request = spb.GetDeviceRequest(caller=c.caller(), device=c.device_ref())
    device = (await call(c.services.storage.GetDevice, request)).device
    return pb.Owner(account_id=device.account_id, device_id=device.id)


async def trigger_counts(c: Call, devices: Sequence[spb.Device]) -> list[int]:
    """Each device's number of triggers; zeros when the triggers service cannot say.

    Device views must not fail because the triggers service is down, so its absence shows
    as a count of 0 (logged) rather than an error.
    """
    if c.services.triggers is None or not devices:
        return [0] * len(devices)
    owners = [pb.Owner(account_id=d.account_id, device_id=d.id) for d in devices]
    try:
        reply = await c.services.triggers.CountTriggers(pb.CountTriggersRequest(owners=owners))
    except grpc.RpcError as exc:
        logger.warning("trigger counts unavailable: %s", exc.code())
        return [0] * len(devices)
    return list(reply.counts)


async def delete_triggers_of(c: Call, device_id: str) -> None:
    """Drop a deleted device's triggers (best effort: orphans never fire, as no value comes)."""
    if c.services.triggers is None:
        return
    owner = pb.Owner(account_id=c.account_id, device_id=device_id)
    try:
        await c.services.triggers.DeleteOwnerTriggers(pb.DeleteOwnerTriggersRequest(owner=owner))
    except grpc.RpcError as exc:
        logger.warning("triggers of deleted device %s kept: %s", device_id, exc.code())


def trigger_json(c: Call, t: pb.Trigger) -> dict[str, Any]:
    """The public trigger object, in the seed's field order."""
    body: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "conditions": orjson.loads(t.conditions_json),
        "frequency": t.frequency,
    }
    if t.frequency == "periodic":
        body["interval"] = t.interval
    body.update({
        "timeframe": t.timeframe,
        "callback_url": t.callback_url,
        "url": c.url(f"/v2/devices/{t.owner.device_id}/triggers/{t.id}"),
        "status": t.status,
        "activated": t.activated,
        "send_location": t.send_location,
        "notify_on_reset": t.notify_on_reset,
        "custom_data": t.custom_data if t.HasField("custom_data") else None,
        "payload_version": PAYLOAD_VERSION,
        "created": iso_ms(t.created_ms),
        "updated": iso_ms(t.updated_ms),
    })  # fmt: skip
    return body


def _body(c: Call) -> str:
    return orjson.dumps(dict(c.body_object())).decode()


async def list_triggers(c: Call) -> ApiResponse:
    request = pb.ListTriggersRequest(owner=await _owner(c))
    reply = await call(_triggers(c).ListTriggers, request)
    return ApiResponse(200, {"triggers": [trigger_json(c, t) for t in reply.triggers]})


async def create_trigger(c: Call) -> ApiResponse:
    body = _body(c)
    request = pb.CreateTriggerRequest(owner=await _owner(c), body_json=body)
    trigger = trigger_json(c, (await call(_triggers(c).CreateTrigger, request)).trigger)
    return ApiResponse(201, trigger, headers={"Location": trigger["url"]})


async def view_trigger(c: Call) -> ApiResponse:
    request = pb.GetTriggerRequest(owner=await _owner(c), id=c.params["trigger"])
    reply = await call(_triggers(c).GetTrigger, request)
    return ApiResponse(200, trigger_json(c, reply.trigger))


async def update_trigger(c: Call) -> ApiResponse:
    body = _body(c)
    request = pb.UpdateTriggerRequest(owner=await _owner(c), id=c.params["trigger"],
                                      body_json=body)  # fmt: skip
    await call(_triggers(c).UpdateTrigger, request)
    return ApiResponse(204)


async def delete_trigger(c: Call) -> ApiResponse:
    request = pb.DeleteTriggerRequest(owner=await _owner(c), id=c.params["trigger"])
    await call(_triggers(c).DeleteTrigger, request)
    return ApiResponse(204)


async def test_trigger(c: Call) -> ApiResponse:
    request = pb.TestTriggerRequest(owner=await _owner(c), id=c.params["trigger"])
    reply = await call(_triggers(c).TestTrigger, request)
    body: dict[str, Any] = {"trigger": trigger_json(c, reply.trigger), "success": reply.success}
    if reply.answered:
        body["response"] = {
            "body": reply.body,
            "status": reply.status,
            "headers": orjson.loads(reply.headers_json or "{}"),
        }
    else:
        body["error"] = reply.error
    return ApiResponse(200, body)


async def triggers_log(c: Call) -> ApiResponse:
    reply = await call(_triggers(c).ListLog, pb.ListLogRequest(owner=await _owner(c)))
    entries = [
        {**orjson.loads(e.payload_json), "response_code": e.response_code} for e in reply.entries
    ]
    return ApiResponse(200, {"entries": entries})


def routes() -> RouteTable:
    table = RouteTable()
    table.add_device("GET", "/triggers", list_triggers, Access.DEVICE)
    table.add_device("POST", "/triggers", create_trigger, Access.DEVICE)
    table.add_device("GET", "/triggers/log", triggers_log, Access.DEVICE)
    table.add_device("GET", "/triggers/{trigger}", view_trigger, Access.DEVICE)
    table.add_device("PUT", "/triggers/{trigger}", update_trigger, Access.DEVICE)
    table.add_device("DELETE", "/triggers/{trigger}", delete_trigger, Access.DEVICE)
    table.add_device("POST", "/triggers/{trigger}/test", test_trigger, Access.DEVICE)
    return table
