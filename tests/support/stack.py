"""Keys, storage and triggers services and the HTTP adapter as processes, plus an HTTP client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from m2x.keys.v1 import keys_pb2 as pb
from m2x.keys.v1 import keys_pb2_grpc
from m2x.runtime.grpc_client import open_channel
from tests.support.processes import Component, start_component

# Far above what any test sends, unless a test asks for real limits.
NO_LIMITS = ("--rate-limit-ip", "100000", "--rate-limit-key", "100000",
             "--rate-limit-device-writes", "100000")  # fmt: skip


@dataclass
class Stack:
    keys: Component
    storage: Component
    http: Component
    url: str
    session: aiohttp.ClientSession
    channel: grpc.aio.Channel
    triggers: Component | None = None

    @property
    def keys_stub(self) -> keys_pb2_grpc.KeysServiceStub:
        return keys_pb2_grpc.KeysServiceStub(self.channel)

    async def new_account(self, name: str = "test") -> tuple[str, str]:
        """(account id, primary master key) of a fresh account."""
        reply = await self.keys_stub.CreateAccount(pb.CreateAccountRequest(name=name))
        return reply.account.id, reply.account.master_key

    async def request(
        self, method: str, path: str, key: str | None = None, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        """(status, decoded JSON body or text or None, headers)."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["X-M2X-KEY"] = key
        async with self.session.request(
            method, self.url + path, json=json, headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            body: Any = None
            if raw:
                if response.content_type == "application/json":
                    body = await response.json()
                else:
                    body = raw.decode(errors="replace")
            return response.status, body, response.headers


@contextlib.asynccontextmanager
async def start_stack(
    workdir: Path, *http_args: str, env: dict[str, str] | None = None,
    triggers_args: tuple[str, ...] = (),
) -> AsyncIterator[Stack]:  # fmt: skip
    keys = await start_component(
        "services.keys", "keys", workdir, "--data-dir", str(workdir), env=env
    )
    started = [keys]
    try:
        storage = await start_component(
            "services.storage", "storage", workdir, "--data-dir", str(workdir),
            "--keys-address", keys.listen, env=env,
        )  # fmt: skip
        started.append(storage)
        triggers = await start_component(
            "services.triggers", "triggers", workdir, "--data-dir", str(workdir),
            "--storage-address", storage.listen, *triggers_args, env=env,
        )  # fmt: skip
        started.append(triggers)
        http = await start_component(
            "adapters.http", "http", workdir, "--listen", "127.0.0.1:0",
            "--keys-address", keys.listen, "--storage-address", storage.listen,
            "--triggers-address", triggers.listen, *http_args, env=env,
        )  # fmt: skip
        started.append(http)
    except BaseException:
        for component in reversed(started):
            await component.stop()
        raise
    channel = open_channel(keys.listen)
    session = aiohttp.ClientSession()
    try:
        yield Stack(keys, storage, http, f"http://{http.listen}", session, channel, triggers)
    finally:
        await session.close()
        await channel.close()
        for component in reversed(started):
            await component.stop()
