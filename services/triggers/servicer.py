"""TriggersService over gRPC: protos in, domain calls, protos out (errors mapped by interceptor)."""

from __future__ import annotations

import orjson

from m2x.runtime.grpc_server import UnaryContext
from m2x.triggers.v1 import triggers_pb2 as pb
from m2x.triggers.v1 import triggers_pb2_grpc
from services.triggers.model import Owner, Trigger
from services.triggers.triggers import Triggers, body_of


def owner(message: pb.Owner) -> Owner:
    return Owner(message.account_id, message.device_id, message.distribution_id)


def trigger_to_pb(t: Trigger, activated: bool) -> pb.Trigger:
    s = t.spec
    message = pb.Trigger(
        id=t.id, name=s.name, conditions_json=orjson.dumps(s.conditions).decode(),
        frequency=s.frequency, interval=s.interval, timeframe=s.timeframe,
        callback_url=s.callback_url, status=s.status, send_location=s.send_location,
        notify_on_reset=s.notify_on_reset, activated=activated, created_ms=t.created_ms,
        updated_ms=t.updated_ms,
        owner=pb.Owner(account_id=t.owner.account_id, device_id=t.owner.device_id,
                       distribution_id=t.owner.distribution_id),
    )  # fmt: skip
    if s.custom_data is not None:
        message.custom_data = s.custom_data
    return message


class TriggersServicer(triggers_pb2_grpc.TriggersServiceServicer):
    def __init__(self, triggers: Triggers) -> None:
        self.triggers = triggers

    def _pb(self, trigger: Trigger) -> pb.Trigger:
        return trigger_to_pb(trigger, self.triggers.activated(trigger))

    async def CreateTrigger(
        self,
        request: pb.CreateTriggerRequest,
        context: UnaryContext[pb.CreateTriggerRequest, pb.CreateTriggerResponse],
    ) -> pb.CreateTriggerResponse:
        trigger = await self.triggers.create(owner(request.owner), body_of(request.body_json))
        return pb.CreateTriggerResponse(trigger=self._pb(trigger))

    async def GetTrigger(
        self,
        request: pb.GetTriggerRequest,
        context: UnaryContext[pb.GetTriggerRequest, pb.GetTriggerResponse],
    ) -> pb.GetTriggerResponse:
        trigger = self.triggers.get(owner(request.owner), request.id)
        return pb.GetTriggerResponse(trigger=self._pb(trigger))

    async def ListTriggers(
        self,
        request: pb.ListTriggersRequest,
        context: UnaryContext[pb.ListTriggersRequest, pb.ListTriggersResponse],
    ) -> pb.ListTriggersResponse:
        found = self.triggers.list(owner(request.owner))
        return pb.ListTriggersResponse(triggers=[self._pb(t) for t in found])

    async def UpdateTrigger(
        self,
        request: pb.UpdateTriggerRequest,
        context: UnaryContext[pb.UpdateTriggerRequest, pb.UpdateTriggerResponse],
    ) -> pb.UpdateTriggerResponse:
        trigger = await self.triggers.update(
            owner(request.owner), request.id, body_of(request.body_json)
        )
        return pb.UpdateTriggerResponse(trigger=self._pb(trigger))

    async def DeleteTrigger(
        self,
        request: pb.DeleteTriggerRequest,
        context: UnaryContext[pb.DeleteTriggerRequest, pb.DeleteTriggerResponse],
    ) -> pb.DeleteTriggerResponse:
        await self.triggers.delete(owner(request.owner), request.id)
        return pb.DeleteTriggerResponse()

    async def DeleteOwnerTriggers(
        self,
        request: pb.DeleteOwnerTriggersRequest,
        context: UnaryContext[pb.DeleteOwnerTriggersRequest, pb.DeleteOwnerTriggersResponse],
    ) -> pb.DeleteOwnerTriggersResponse:
        deleted = await self.triggers.delete_owner(owner(request.owner))
        return pb.DeleteOwnerTriggersResponse(deleted=deleted)

    async def CountTriggers(
        self,
        request: pb.CountTriggersRequest,
        context: UnaryContext[pb.CountTriggersRequest, pb.CountTriggersResponse],
    ) -> pb.CountTriggersResponse:
        counts = self.triggers.count([owner(o) for o in request.owners])
        return pb.CountTriggersResponse(counts=counts)

    async def TestTrigger(
        self,
        request: pb.TestTriggerRequest,
        context: UnaryContext[pb.TestTriggerRequest, pb.TestTriggerResponse],
    ) -> pb.TestTriggerResponse:
        trigger, outcome = await self.triggers.test(owner(request.owner), request.id)
        return pb.TestTriggerResponse(
            trigger=self._pb(trigger), success=outcome.success, answered=outcome.status > 0,
            status=outcome.status, body=outcome.body,
            headers_json=orjson.dumps(outcome.headers).decode(), error=outcome.error,
        )  # fmt: skip

    async def ListLog(
        self,
        request: pb.ListLogRequest,
        context: UnaryContext[pb.ListLogRequest, pb.ListLogResponse],
    ) -> pb.ListLogResponse:
        entries = await self.triggers.entries(owner(request.owner))
        return pb.ListLogResponse(entries=[
            pb.LogEntry(trigger_id=e.trigger_id, payload_json=e.payload_json,
                        response_code=e.response_code, timestamp_ms=e.timestamp_ms)
            for e in entries
        ])  # fmt: skip
