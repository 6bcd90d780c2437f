"""A real webhook receiver on loopback that records what it is POSTed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() of arrival


@dataclass
class Receiver:
    """Answers `status` (with `delay` seconds of stalling); `down()` closes the port."""

    status: int = 200
    answer: str = "OK!"
    delay: float = 0.0
    held: asyncio.Event | None = None  # while set to an unset event, requests hang
    received: list[Received] = field(default_factory=list)
    attempts: int = 0  # requests seen, whatever was answered
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.held is not None:
            await self.held.wait()
        if 200 <= self.status < 300:
            self.received.append(Received(request.path, dict(request.headers), body, time.time()))
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=self.status, text=self.answer, content_type="text/plain")

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def hold(self) -> None:
        """Make every request hang, unanswered, until `release()`."""
        self.held = asyncio.Event()

    def release(self) -> None:
        if self.held is not None:
            self.held.set()
            self.held = None

    async def down(self) -> None:
        """Stop listening (connections are refused) but keep the port for `up()` again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """The first `count` bodies received with a 2xx answer, once they arrived."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    async def wait_attempts(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: self.attempts >= count)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(event, {stream: value}) of each notification received, in order."""
        return [
            (r.body["event"], {s: v["value"] for s, v in r.body["values"].items()})
            for r in self.received
        ]


@contextlib.asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[Receiver]:
    hook = Receiver(status=status)
    await hook.up()
    try:
        yield hook
    finally:
        hook.release()
        await hook.down()
