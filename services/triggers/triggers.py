"""The service's operations: trigger CRUD, the test endpoint and the log, over its parts."""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from m2x.runtime.errors import NotFound
from services.triggers import tester
from services.triggers.batcher import Batcher
from services.triggers.callbacks import CallbackClient, Outcome
from services.triggers.delivery import build_body
from services.triggers.engine import Engine
from services.triggers.feed import Feed
from services.triggers.model import Owner, Trigger, Value
from services.triggers.registry import Registry
from services.triggers.spec import read_spec
from services.triggers.storage_client import StorageClient, StreamInfo
from services.triggers.store import LogRow, Store

LOG_ENTRIES = 100


@dataclass(frozen=True, slots=True)
class LogEntry:
    trigger_id: str
    payload_json: str
    response_code: int
    timestamp_ms: int


def _previous(streams: Mapping[str, StreamInfo]) -> dict[str, Value]:
    return {name: s.latest for name, s in streams.items() if s.latest is not None}


class Triggers:
    def __init__(self, registry: Registry, engine: Engine, feed: Feed, storage: StorageClient,
                 client: CallbackClient, log: Batcher[LogRow], store: Store) -> None:  # fmt: skip
        self.registry = registry
        self.engine = engine
        self.feed = feed
        self.storage = storage
        self.client = client
        self.log = log
        self.store = store

    async def _streams(self, owner: Owner) -> dict[str, StreamInfo] | None:
        # Distribution streams arrive with distributions; until then they are not checked.
        return await self.storage.streams(owner) if owner.device_id else None

    def activated(self, trigger: Trigger) -> bool:
        return self.engine.activated(trigger)

    def get(self, owner: Owner, trigger_id: str) -> Trigger:
        return self.registry.get(owner, trigger_id)

    def list(self, owner: Owner) -> list[Trigger]:
        return self.registry.of_owner(owner)

    def count(self, owners: builtins.list[Owner]) -> builtins.list[int]:
        return [self.registry.count(owner) for owner in owners]

    async def create(self, owner: Owner, body: Mapping[str, Any]) -> Trigger:
        streams = await self._streams(owner)
        types = {name: s.type for name, s in streams.items()} if streams is not None else None
        trigger = await self.registry.create(owner, read_spec(body, types))
        self.engine.rearm(trigger, _previous(streams or {}))
        self.feed.refresh()
        return trigger

    async def update(self, owner: Owner, trigger_id: str, body: Mapping[str, Any]) -> Trigger:
        self.registry.get(owner, trigger_id)
        streams = await self._streams(owner)
        types = {name: s.type for name, s in streams.items()} if streams is not None else None
        current = self.registry.get(owner, trigger_id)  # it may have gone meanwhile
        updated, rearmed = await self.registry.update(current, read_spec(body, types, current.spec))
        if rearmed:
            self.engine.rearm(updated, _previous(streams or {}))
        self.feed.refresh()
        return updated

    async def delete(self, owner: Owner, trigger_id: str) -> None:
        trigger = self.registry.get(owner, trigger_id)
        await self.registry.delete([trigger])
        self.engine.drop(trigger.id)
        self.feed.refresh()

    async def delete_owner(self, owner: Owner) -> int:
        triggers = self.registry.of_owner(owner)
        await self.registry.delete(triggers)
        for trigger in triggers:
            self.engine.drop(trigger.id)
        self.feed.refresh()
        return len(triggers)

    async def test(self, owner: Owner, trigger_id: str) -> tuple[Trigger, Outcome]:
        """POST a notification with fake values now; the attempt is logged like any other."""
        trigger = self.registry.get(owner, trigger_id)
        if not owner.device_id:
            raise NotFound("Device")  # distribution tests need a member device: not yet
        event = tester.fake_event(trigger, owner.device_id, await self.storage.streams(owner))
        body = await build_body(self.storage, event)
        outcome = await self.client.post(trigger.spec.callback_url, body, keep_body=True)
        self.log.add(LogRow(owner, trigger.id, time.time_ns() // 1_000_000, body,
                            outcome.status))  # fmt: skip
        return trigger, outcome

    async def entries(self, owner: Owner) -> builtins.list[LogEntry]:
        await self.log.flush()  # read your own writes: attempts made so far are listed
        rows = await self.store.list_log(owner, LOG_ENTRIES)
        return [LogEntry(t, payload, code, at) for t, payload, code, at in rows]


def body_of(body_json: str) -> Mapping[str, Any]:
    body = orjson.loads(body_json or "{}")
    return body if isinstance(body, Mapping) else {}
