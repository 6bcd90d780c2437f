"""Commands on their way to devices: each handed to one connected MQTT adapter, never queued.

Any adapter replica can publish a command to the broker, so a delivery goes to one watcher
(round robin), not to all of them, which would make the device run it once per replica. A
command sent while no adapter watches is not delivered over MQTT at all: the device fetches it
with GET /v2/devices/{id}/commands?status=pending, as with M2X (spec §21).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

# A watcher this far behind is skipped, so that one stuck adapter cannot hold memory or
# delay the commands another adapter could deliver.
MAX_BACKLOG = 10_000


@dataclass(frozen=True, slots=True)
class CommandDelivery:
    device_id: str
    device_key: str  # the device's primary key, whose topic m2x/<key>/commands the device reads
    id: str
    name: str
    data_json: str  # a JSON object, or "" for none
    sent_at_ms: int


class Subscription:
    """One watcher's deliveries, registered from creation until closed."""

    def __init__(self, queue: asyncio.Queue[CommandDelivery]) -> None:
        self._queue = queue

    async def __aiter__(self) -> AsyncIterator[CommandDelivery]:
        while True:
            yield await self._queue.get()


class CommandsFeed:
    def __init__(self, backlog: int = MAX_BACKLOG) -> None:
        self._backlog = backlog
        self._watchers: list[asyncio.Queue[CommandDelivery]] = []
        self._turn = 0

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def publish(self, delivery: CommandDelivery) -> bool:
        """Hand `delivery` to one watcher; False when none could take it (not delivered)."""
        for _ in range(len(self._watchers)):
            self._turn = (self._turn + 1) % len(self._watchers)
            try:
                self._watchers[self._turn].put_nowait(delivery)
                return True
            except asyncio.QueueFull:
                continue
        return False

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Register a watcher at once (so that nothing published after this call is missed)."""
        queue: asyncio.Queue[CommandDelivery] = asyncio.Queue(self._backlog)
        self._watchers.append(queue)
        try:
            yield Subscription(queue)
        finally:
            self._watchers.remove(queue)
