"""Stored values for consumers that must see every write (the triggers service).

A watcher registers before it replays history, so a write is either in the replay or in its
live queue (and duplicates are dropped by version). The live queue is bounded: a watcher that
falls behind is cut off and resumes from its cursor, which replays from ClickHouse; writers
never wait for watchers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from services.storage.batches import Batch
from services.storage.series import Series, StoredRow

logger = logging.getLogger(__name__)

REPLAY_PAGE = 20_000
MAX_BACKLOG = 200_000  # rows queued for one watcher before it is cut off


class WatcherLagged(Exception):
    """The watcher's live queue overflowed; it must resume from its cursor."""


@dataclass(eq=False, slots=True)
class _Watcher:
    devices: frozenset[tuple[str, str]]
    queue: asyncio.Queue[list[StoredRow] | None] = field(default_factory=asyncio.Queue)
    backlog: int = 0


class ValueFeed:
    def __init__(self, series: Series) -> None:
        self.series = series
        self._watchers: set[_Watcher] = set()
        series.listeners.append(self._written)

    def _written(self, batch: Batch) -> None:
        if not self._watchers:
            return
        key = (batch.account_id, batch.device_id)
        rows = None
        for watcher in list(self._watchers):
            if key not in watcher.devices or watcher.backlog < 0:
                continue
            if rows is None:
                rows = batch.stored_rows()
            watcher.backlog += len(rows)
            if watcher.backlog > MAX_BACKLOG:
                watcher.backlog = -1
                watcher.queue.put_nowait(None)
            else:
                watcher.queue.put_nowait(rows)

    async def watch(
        self, devices: Sequence[tuple[str, str]], after_version: int
    ) -> AsyncIterator[tuple[list[StoredRow], bool]]:
        """(rows, caught_up) batches: the replay after `after_version`, then live writes."""
        watcher = _Watcher(frozenset(devices))
        self._watchers.add(watcher)
        # Writes up to `upto` are stored and were handed out before this watcher existed: the
        # replay covers them. Every later write reaches the watcher's queue, in version order.
        upto = self.series.released_version
        try:
            last = after_version
            while last < upto:
                page = await self.series.since(sorted(watcher.devices), last, upto, REPLAY_PAGE)
                if page:
                    last = page[-1][5]
                    yield page, False
                if len(page) < REPLAY_PAGE:
                    break
            last = max(last, upto)
            yield [], True
            while True:
                # Writes queued meanwhile go out in one message: a busy feed sends fewer,
                # larger messages instead of one per write.
                batches = [await watcher.queue.get()]
                while not watcher.queue.empty() and batches[-1] is not None:
                    batches.append(watcher.queue.get_nowait())
                if batches[-1] is None:
                    raise WatcherLagged()
                rows = [row for batch in batches if batch for row in batch]
                watcher.backlog -= len(rows)
                fresh = [row for row in rows if row[5] > last]
                if fresh:
                    last = fresh[-1][5]
                    yield fresh, False
        finally:
            self._watchers.discard(watcher)
