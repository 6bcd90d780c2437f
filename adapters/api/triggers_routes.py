"""Device triggers (spec §10, seed 001): list, create, view, update, test, delete, the log.

The storage service resolves the device (serials, account, device-key scope) and the triggers
service does the rest; distribution routes arrive with distributions and call the same RPCs
with a distribution owner.
"""

from __future__ import annotations

from typing import Any

import orjson

from adapters.api.context import Call
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from adapters.api.rpc import call
from m2x.runtime.errors import Unavailable
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as spb
from m2x.triggers.v1 import triggers_pb2 as pb

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
