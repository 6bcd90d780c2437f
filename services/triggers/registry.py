"""Every trigger in memory, indexed by id, owner and watched device; writes go through first."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from m2x.runtime.errors import NotFound
from services.triggers.model import Owner, Spec, Trigger
from services.triggers.store import Store

_NONE: dict[str, Trigger] = {}
# Fields whose change makes the evaluation start afresh (state dropped, older values ignored).
_REARMING = ("conditions", "frequency", "interval", "timeframe")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rearms(before: Spec, after: Spec) -> bool:
    if any(getattr(before, f) != getattr(after, f) for f in _REARMING):
        return True
    return before.status != "enabled" and after.status == "enabled"


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_id: dict[str, Trigger] = {}
        self._by_owner: dict[tuple[str, str, str], dict[str, Trigger]] = {}
        self._by_device: dict[tuple[str, str], dict[str, Trigger]] = {}  # enabled only
        self._by_stream: dict[tuple[str, str, str], dict[str, Trigger]] = {}  # enabled only
        self._next_id = 1

    async def load(self) -> None:
        for trigger in await self.store.load_triggers():
            self._remember(trigger)
        self._next_id = max(self._next_id, await self.store.highest_id() + 1)

    # reads
    def get(self, owner: Owner, trigger_id: str) -> Trigger:
        trigger = self._by_id.get(trigger_id)
        if trigger is None or trigger.owner != owner:
            raise NotFound("Trigger", trigger_id)
        return trigger

    def by_id(self, trigger_id: str) -> Trigger | None:
        return self._by_id.get(trigger_id)

    def of_owner(self, owner: Owner) -> list[Trigger]:
        found = self._by_owner.get(owner.key, {}).values()
        return sorted(found, key=lambda t: int(t.id))

    def count(self, owner: Owner) -> int:
        return len(self._by_owner.get(owner.key, _NONE))

    def enabled_on(self, account_id: str, device_id: str, stream: str) -> Iterable[Trigger]:
        return self._by_stream.get((account_id, device_id, stream), _NONE).values()

    def watched_devices(self) -> list[tuple[str, str]]:
        return sorted(self._by_device)

    def floor(self) -> int:
        """Feed versions at or below this concern no enabled trigger."""
        return min(
            (t.since_version for d in self._by_device.values() for t in d.values()), default=0
        )

    # writes: ClickHouse first, then memory
    async def create(self, owner: Owner, spec: Spec) -> Trigger:
        trigger_id = str(self._next_id)
        self._next_id += 1
        created = now_ms()
        version = self.store.next_version()
        trigger = Trigger(trigger_id, owner, spec, created, created, version, version)
        await self.store.save_triggers([trigger])
        self._remember(trigger)
        return trigger

    async def update(self, trigger: Trigger, spec: Spec) -> tuple[Trigger, bool]:
        """The updated trigger, and whether its evaluation starts afresh."""
        rearm = _rearms(trigger.spec, spec)
        since = self.store.next_version() if rearm else trigger.since_version
        updated = Trigger(trigger.id, trigger.owner, spec, trigger.created_ms, now_ms(), since,
                          since if rearm else trigger.revision)  # fmt: skip
        await self.store.save_triggers([updated])
        self._forget(trigger)
        self._remember(updated)
        return updated, rearm

    async def delete(self, triggers: list[Trigger]) -> None:
        if triggers:
            await self.store.save_triggers(deleted=triggers)
        for trigger in triggers:
            self._forget(trigger)

    def _remember(self, trigger: Trigger) -> None:
        self._by_id[trigger.id] = trigger
        self._by_owner.setdefault(trigger.owner.key, {})[trigger.id] = trigger
        if trigger.enabled and trigger.owner.device_id:
            device = (trigger.owner.account_id, trigger.owner.device_id)
            self._by_device.setdefault(device, {})[trigger.id] = trigger
            for stream in trigger.streams:
                self._by_stream.setdefault((*device, stream), {})[trigger.id] = trigger

    def _forget(self, trigger: Trigger) -> None:
        self._by_id.pop(trigger.id, None)
        device = (trigger.owner.account_id, trigger.owner.device_id)
        _drop(self._by_owner, trigger.owner.key, trigger.id)
        _drop(self._by_device, device, trigger.id)
        for stream in trigger.streams:
            _drop(self._by_stream, (*device, stream), trigger.id)


def _drop(index: dict[Any, dict[str, Trigger]], key: Any, trigger_id: str) -> None:
    entries = index.get(key)
    if entries is not None:
        entries.pop(trigger_id, None)
        if not entries:
            del index[key]
