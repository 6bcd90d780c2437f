"""Device life cycle: create (with its primary key), view, update, delete, list, tags."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import Counter
from typing import Any

from m2x.runtime.errors import PermissionDenied, ValidationFailed
from services.storage import device_query
from services.storage.access import Caller, resolve
from services.storage.device_query import DeviceFilter
from services.storage.keys_client import KeysClient
from services.storage.model import SPEC_FIELDS, Device, DeviceSpec, Stream, validate_device
from services.storage.state import State


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Devices:
    def __init__(self, state: State, keys: KeysClient) -> None:
        self.state = state
        self.store = state.store
        self.keys = keys

    def _check_serial(self, account_id: str, serial: str, device_id: str = "") -> None:
        other = self.store.device_by_serial(account_id, serial) if serial else None
        if other is not None and other.id != device_id:
            raise ValidationFailed({"serial": ["not_unique"]})

    async def create(self, caller: Caller, spec: DeviceSpec) -> tuple[Device, str]:
        if not caller.master:
            raise PermissionDenied("MASTER_KEY_REQUIRED")
        spec = validate_device(spec)
        base = None
        if spec.base_device:
            base = self.store.devices.get(spec.base_device)
            if base is None or base.account_id != caller.account_id:
                raise ValidationFailed({"base_device": ["not_valid"]})
        async with self.state.write_lock:
            self._check_serial(caller.account_id, spec.serial)
            now = now_ms()
            device = Device(secrets.token_hex(16), caller.account_id, spec, now, now)
            if base is not None and not spec.metadata:
                device = dataclasses.replace(
                    device, spec=dataclasses.replace(spec, metadata=base.spec.metadata)
                )
            await self.store.save_device(device)
        # The key is created after the device is durable, and idempotently, so a crash in
        # between leaves a device whose key a retry or the next view creates.
        key = await self.keys.create_device_key(caller.account_id, device.id)
        if base is not None:
            copies = [Stream(caller.account_id, device.id, s.name, s.spec, now, now)
                      for s in self.store.streams_of(base.id).values()]  # fmt: skip
            if copies:
                await self.store.save_streams(copies)
        return device, key

    async def key_of(self, caller: Caller, device: Device) -> str:
        """The primary device key, shown to master keys of the device's account only."""
        if not caller.master or caller.account_id != device.account_id:
            return ""
        keys = await self.keys.device_keys(device.account_id, [device.id])
        return keys.get(device.id) or await self.keys.create_device_key(
            device.account_id, device.id
        )

    async def update(
        self, caller: Caller, device: Device, changes: DeviceSpec, fields: list[str]
    ) -> Device:
        unknown = [f for f in fields if f not in SPEC_FIELDS or f == "base_device"]
        if unknown:
            raise ValidationFailed({f: ["not_valid"] for f in unknown})
        spec = validate_device(
            dataclasses.replace(device.spec, **{f: getattr(changes, f) for f in fields})
        )
        async with self.state.write_lock:
            current = resolve(self.store, caller, device_id=device.id, master_only=True)
            self._check_serial(caller.account_id, spec.serial, device.id)
            updated = dataclasses.replace(current, spec=spec, updated_ms=now_ms())
            await self.store.save_device(updated)
        return updated

    async def delete(self, caller: Caller, device: Device) -> None:
        async with self.state.write_lock:
            streams = list(self.store.streams_of(device.id).values())
            await self.store.save_device(device, deleted=True)
            if streams:
                await self.store.save_streams(streams, deleted=True)
        self.state.forget_device(device.id)
        await self.keys.revoke_device_keys(device.account_id, device.id)
        await self.state.series.delete_device(device.account_id, device.id)
        await self.store.delete_device_rows(device.account_id, device.id)

    def list(self, caller: Caller, catalog: bool, f: DeviceFilter, page: int, limit: int,
             sort: str, dir: str) -> tuple[list[Device], int]:  # fmt: skip
        if not catalog and not caller.master:
            raise PermissionDenied("MASTER_KEY_REQUIRED")
        if sort and sort not in device_query.SORTS:
            raise ValidationFailed({"sort": ["not_valid"]})
        if dir and dir not in ("asc", "desc"):
            raise ValidationFailed({"dir": ["not_valid"]})
        if catalog:
            pool: Any = (d for d in self.store.devices.values() if d.public)
            f = dataclasses.replace(f, visibility="public")
        else:
            pool = self.store.devices_of(caller.account_id)
        return device_query.select(
            pool, f, self.state.latest_value, self.state.current_location,
            lambda device_id: self.state.activity.get(device_id, 0), sort or "created", (dir or "desc") == "desc", max(page, 1), limit,
        )  # fmt: skip

    def tags(self, caller: Caller) -> dict[str, int]:
        if not caller.master:
            raise PermissionDenied("MASTER_KEY_REQUIRED")
        return dict(
            Counter(t for d in self.store.devices_of(caller.account_id) for t in d.spec.tags)
        )

    async def put_metadata(self, caller: Caller, device: Device, field: str, value: Any) -> None:
        """Replace the whole metadata object, or set one field when `field` is given."""
        if field:
            metadata = {**device.spec.metadata, field: value}
        elif isinstance(value, dict):
            metadata = value
        else:
            raise ValidationFailed({"metadata": ["not_valid"]})
        async with self.state.write_lock:
            current = self.store.devices[device.id]
            spec = dataclasses.replace(current.spec, metadata=metadata)
            await self.store.save_device(
                dataclasses.replace(current, spec=spec, updated_ms=now_ms())
            )
