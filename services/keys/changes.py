"""The key change feed: every subscriber gets every change, or loses its stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

# A subscriber this far behind is cut off; it then forgets its whole cache and resubscribes,
# which is always correct, whereas dropping one event could keep a revoked key alive.
MAX_BACKLOG = 10_000


class ChangeFeed:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[tuple[str, ...] | None]] = set()

    def publish(self, keys: Iterable[str]) -> None:
        batch = tuple(keys)
        if not batch:
            return
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)  # tells the subscriber's stream to end

    async def subscribe(self) -> AsyncIterator[tuple[str, ...]]:
        """Batches of changed key strings; the first batch is empty (subscription is live)."""
        queue: asyncio.Queue[tuple[str, ...] | None] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield ()
            while (batch := await queue.get()) is not None:
                yield batch
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        for queue in list(self._subscribers):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        self._subscribers.clear()
