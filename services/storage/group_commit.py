"""Group commit: concurrent writers of one table share one column-oriented INSERT."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

logger = logging.getLogger(__name__)

Columns = Sequence[Sequence[Any]]
InsertColumns = Callable[[list[list[Any]]], Awaitable[None]]


@dataclass(slots=True)
class Counters:
    """What the flusher did so far; batches and rows count those whose INSERT returned."""

    batches: int = 0
    rows: int = 0
    inserts: int = 0
    failed_inserts: int = 0


@dataclass(slots=True)
class _Pending:
    columns: Columns
    rows: int
    done: asyncio.Future[None]


class GroupCommit:
    """Gathers batches of `width` equal-length columns and writes them with one INSERT.

    A single flusher task takes everything pending once `delay` seconds passed since the
    oldest pending batch (or sooner when `max_rows` are pending) and awaits `insert` with the
    columns concatenated; while that INSERT runs, new batches queue for the next one. A writer
    is answered only when the INSERT holding its rows returned, or fails with its exception.
    """

    def __init__(
        self,
        insert: InsertColumns,
        *,
        width: int,
        name: str = "",
        delay: float = 0.005,
        max_rows: int = 50_000,
    ) -> None:
        self.name = name
        self.width = width
        self.delay = delay
        self.max_rows = max_rows
        self.counters = Counters()
        self._insert = insert
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._oldest = 0.0  # loop time at which the oldest pending batch arrived
        self._wake = asyncio.Event()  # something is pending, or closing
        self._hurry = asyncio.Event()  # flush without waiting out the delay
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        meter = metrics.get_meter("m2x.storage")
        self._rows_histogram = meter.create_histogram(
            "m2x.storage.insert.rows", unit="{row}", description="Rows per group-committed INSERT"
        )
        self._attributes = {"table": name}

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")

    async def close(self) -> None:
        """Stop taking writes, flush what is pending and wait for the flusher to end."""
        self._closing = True
        self._wake.set()
        self._hurry.set()
        if self._task is not None:
            await self._task

    async def write(self, columns: Columns) -> None:
        """Queue `columns` for the next INSERT; returns once that INSERT returned."""
        if self._task is None or self._closing:
            raise RuntimeError(f"group commit {self.name!r} is not running")
        rows = self._count(columns)
        if rows == 0:
            return
        loop = asyncio.get_running_loop()
        if not self._pending:
            self._oldest = loop.time()
        # A writer that gets cancelled leaves its rows queued: they may still be written, as
        # with any request whose answer was lost.
        entry = _Pending(columns, rows, loop.create_future())
        self._pending.append(entry)
        self._pending_rows += rows
        self._wake.set()
        if self._pending_rows >= self.max_rows:
            self._hurry.set()
        await entry.done

    def _count(self, columns: Columns) -> int:
        if len(columns) != self.width:
            raise ValueError(f"expected {self.width} columns, got {len(columns)}")
        lengths = {len(column) for column in columns}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal lengths {sorted(lengths)}")
        return lengths.pop() if lengths else 0

    async def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._wait_for_more()
                batch = self._take()
                await self._flush(batch)
                batch = []
        finally:
            # Only reached with writers still waiting if the task was cancelled.
            for entry in [*batch, *self._pending]:
                if not entry.done.done():
                    entry.done.set_exception(RuntimeError(f"group commit {self.name!r} stopped"))

    async def _wait_for_more(self) -> None:
        remaining = self._oldest + self.delay - asyncio.get_running_loop().time()
        if remaining > 0 and not self._hurry.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), remaining)

    def _take(self) -> list[_Pending]:
        batch, self._pending, self._pending_rows = self._pending, [], 0
        if not self._closing:
            self._hurry.clear()
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        columns = [
            list(itertools.chain.from_iterable(entry.columns[i] for entry in batch))
            for i in range(self.width)
        ]
        rows = sum(entry.rows for entry in batch)
        self.counters.inserts += 1
        try:
            await self._insert(columns)
        except Exception as exc:
            self.counters.failed_inserts += 1
            logger.warning("INSERT of %d rows into %s failed: %r", rows, self.name, exc)
            for entry in batch:
                if not entry.done.done():
                    entry.done.set_exception(exc)
            return
        self.counters.batches += len(batch)
        self.counters.rows += rows
        self._rows_histogram.record(rows, self._attributes)
        for entry in batch:
            if not entry.done.done():
                entry.done.set_result(None)
