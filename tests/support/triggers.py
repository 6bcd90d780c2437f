"""Trigger tests' helpers: a device with streams, triggers on it and values posted to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.stack import NO_LIMITS, Stack, start_stack

BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# One delivery at a time per callback host: notifications reach a receiver in the order they
# were produced, so once the last expected one arrived no earlier one can still be on its way.
TRIGGERS_ARGS = ("--delivery-per-host", "1", "--retry-initial", "0.2", "--retry-max", "0.4",
                 "--device-cache-ttl", "0")  # fmt: skip


def iso(second: float) -> str:
    """The timestamp `second` seconds after BASE_MS."""
    moment = EPOCH + timedelta(milliseconds=BASE_MS + round(second * 1000))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@contextlib.asynccontextmanager
async def trigger_stack(workdir: Path, *triggers_args: str) -> AsyncIterator[Stack]:
    async with start_stack(
        workdir, *NO_LIMITS, triggers_args=(*TRIGGERS_ARGS, *triggers_args)
    ) as stack:
        yield stack


@dataclass
class Device:
    stack: Stack
    account_id: str
    key: str  # the account's master key
    id: str
    serial: str
    device_key: str

    @property
    def base(self) -> str:
        return f"/v2/devices/{self.id}"

    async def call(self, method: str, path: str, json: Any = None, key: str | None = None
                   ) -> tuple[int, Any]:  # fmt: skip
        status, body, _ = await self.stack.request(
            method, self.base + path, key=key or self.key, json=json
        )
        return status, body

    async def stream(self, name: str, kind: str = "numeric", symbol: str | None = None) -> None:
        body: dict[str, Any] = {"type": kind}
        if symbol:
            body["unit"] = {"label": symbol, "symbol": symbol}
        status, answer = await self.call("PUT", f"/streams/{name}", body)
        assert status in (201, 204), answer

    async def trigger(self, callback_url: str, **fields: Any) -> dict[str, Any]:
        body = {"name": fields.pop("name", "t"), "frequency": "continuous",
                "callback_url": callback_url, **fields}  # fmt: skip
        status, answer = await self.call("POST", "/triggers", body)
        assert status == 201, answer
        return answer  # type: ignore[no-any-return]

    async def values(self, stream: str, *points: tuple[float, Any]) -> None:
        """POST (second, value) points to one stream in one request."""
        body = {"values": [{"timestamp": iso(s), "value": v} for s, v in points]}
        status, answer = await self.call("POST", f"/streams/{stream}/values", body)
        assert status == 202, answer

    async def update(self, second: float, **values: Any) -> None:
        """One value of several streams at one timestamp (POST /update)."""
        status, answer = await self.call(
            "POST", "/update", {"timestamp": iso(second), "values": values}
        )
        assert status == 202, answer


async def new_device(stack: Stack, *streams: str | tuple[str, str]) -> Device:
    """A fresh account's device with numeric (name) or typed ((name, type)) streams."""
    account_id, master = await stack.new_account()
    status, device, _ = await stack.request(
        "POST", "/v2/devices", key=master,
        json={"name": "Test Device", "visibility": "private", "serial": "ABC123"},
    )  # fmt: skip
    assert status == 201, device
    made = Device(stack, account_id, master, device["id"], "ABC123", device["key"])
    for stream in streams:
        name, kind = stream if isinstance(stream, tuple) else (stream, "numeric")
        await made.stream(name, kind)
    return made
