"""Small writes gathered into one INSERT: whatever arrives while one runs goes in the next."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Batcher(Generic[T]):
    """Best-effort background writes (log entries, delivered marks); `flush` awaits them."""

    def __init__(
        self, name: str, write: Callable[[Sequence[T]], Awaitable[None]], interval: float = 0.0
    ) -> None:
        self.name = name
        self.interval = interval  # least seconds between two writes: fewer, larger INSERTs
        self._write = write
        self._pending: list[T] = []
        self._gathering: asyncio.Future[None] | None = None  # done once _pending is written
        self._writing: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"batcher-{self.name}")

    def add(self, item: T) -> None:
        self._pending.append(item)
        if self._gathering is None:
            self._gathering = asyncio.get_running_loop().create_future()
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything added so far is written (or given up on)."""
        for future in (self._gathering, self._writing):
            if future is not None:
                await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.interval:
                await asyncio.sleep(self.interval)
            items, done = self._pending, self._gathering
            self._pending, self._gathering = [], None
            if done is None:
                continue
            self._writing = done
            try:
                await self._write(items)
            except Exception:
                # A lost log entry or delivered mark costs a gap or a duplicate, never a
                # missed notification: drop the batch rather than grow without bound.
                logger.exception("could not write %d %s entries", len(items), self.name)
            finally:
                self._writing = None
                done.set_result(None)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
