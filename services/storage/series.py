"""Stream values: acknowledged after a write-ahead log append, stored by large INSERTs.

A write takes versions, appends one WAL record and joins the in-memory buffer; its caller is
answered then. A flusher task moves the buffer into ClickHouse with one INSERT per table when
`flush_rows` are buffered, when the oldest buffered write is `flush_interval` old, or at once
when a read needs rows still buffered (a read sees every write answered before it). Once the
rows are inserted their WAL segments are retired. At start, what the WAL still holds is
inserted before anything is served.

ClickHouse keeps the rows of a stream ordered by timestamp; a second write at the same
timestamp carries a larger version and replaces the first (ReplacingMergeTree), which reads
must deduplicate with FINAL. Most streams only ever append, so Series remembers the streams
where a timestamp may have been written twice (`rewritten`, persisted) and reads of the
others skip FINAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry import metrics

from m2x.runtime.clickhouse import Database
from m2x.runtime.errors import Unavailable
from services.storage.batches import Batch, Columns, Part, arrow_table, read_record, write_record
from services.storage.hourly import hourly_table
from services.storage.recent import TAIL, RecentValues
from services.storage.value_queries import (
    _TABLES,
    NUMERIC,
    TEXT,
    Point,
    Points,
    Rows,
    Samples,
    StoredRow,
    Value,
    ValueQueries,
)
from services.storage.wal import WriteAheadLog

logger = logging.getLogger(__name__)

__all__ = ["NUMERIC", "TEXT", "Point", "Series", "StoredRow", "Value"]

StreamKey = tuple[str, str, str]  # account, device, stream
# Rows of one INSERT are not deduplicated by (stream, timestamp) on the way in: ~10% less CPU,
# and reads of streams that may repeat a timestamp deduplicate anyway (FINAL).
_INSERT_SETTINGS = {"optimize_on_insert": 0}
_HOUR_KEY = ("account_id", "device_id", "stream", "hour")  # of a numeric_hourly row


@dataclass(slots=True)
class Counters:
    """What the flusher did so far, for metrics and tests."""

    flushes: int = 0
    failed_flushes: int = 0
    failed_hourly_inserts: int = 0  # INSERTs of hourly aggregates, or aggregations again
    recent_reads: int = 0  # lists of the newest values answered from memory (RecentValues)
    rows: int = 0
    inserts: int = 0


# A write's account, device, numeric and text values (columns, or (stream, stamps, values) parts)
Write = tuple[str, str, Columns | Sequence[Part], Columns | Sequence[Part]]


def _columns(given: Columns | Sequence[Part], numeric: bool) -> Columns | None:
    """The values as columns; None when there are none."""
    if not isinstance(given, Columns):
        if not given:
            return None
        given = Columns.from_parts(given, numeric)
    return given if given.rows else None


@dataclass(slots=True)
class _Ready:
    """A write with its versions, between taking them and its WAL append."""

    account_id: str
    device_id: str
    batches: dict[str, Batch]  # per table with values
    ascending: dict[str, bool]  # per table: Columns.ascending()
    newest: dict[str, list[tuple[str, int, Any]]]  # per table: Batch.newest()
    last_version: int

    def record(self) -> list[Any]:
        return write_record(self.account_id, self.device_id,
                            self.batches.get(NUMERIC), self.batches.get(TEXT))  # fmt: skip


@dataclass(slots=True)
class _Buffer:
    """Written rows waiting for their INSERT, per table, in version order."""

    batches: dict[str, list[Batch]] = field(default_factory=lambda: {NUMERIC: [], TEXT: []})
    rows: int = 0


class Series:
    """Values of every stream of every account, in `numeric_values` and `text_values`."""

    def __init__(
        self,
        db: Database,
        wal_dir: Path,
        *,
        flush_interval: float = 1.0,
        flush_rows: int = 500_000,
        max_buffered_rows: int = 2_000_000,
        full_wait: float = 10.0,
        fsync: bool = False,
    ) -> None:
        self.db = db
        self.queries = ValueQueries(db)
        self.wal = WriteAheadLog(wal_dir, fsync=fsync)
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.max_buffered_rows = max_buffered_rows
        self.full_wait = full_wait  # how long a write waits for room before Unavailable
        self.counters = Counters()
        # Called with the batches of every write once it is durable, in version order.
        self.listeners: list[Callable[[Batch], None]] = []
        self.recent = RecentValues()  # the newest values of streams that are read
        self.listeners.append(self.recent.written)
        self.released_version = 0  # every write up to here is durable and was handed out
        self.latest: dict[tuple[str, str], Point] = {}  # (device, stream) -> newest point
        # (device, stream) -> no stored value is older (deletes may leave it lower than that)
        self.earliest: dict[tuple[str, str], int] = {}
        self.rewritten: set[StreamKey] = set()  # streams where a timestamp may repeat
        self._last_version = 0
        self._buffer = _Buffer()
        # kind -> lowest version of rows an INSERT may or may not have stored (it failed, and
        # ClickHouse can fail an INSERT after storing its rows: a materialized view that
        # throws, an answer lost on the way back). Deleted before anything else is inserted.
        self._doubtful: dict[str, int] = {}
        self._inserting = 0  # rows taken from the buffer by the INSERTs under way
        self._inserted = asyncio.Event()  # replaced by a fresh one after every flush
        self._oldest = 0.0  # loop time of the oldest buffered write
        self._buffered_devices: dict[tuple[str, str], int] = {}  # -> newest buffered version
        self._flushed_version = 0  # every write up to here is in ClickHouse
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()  # something is buffered, or closing
        self._hurry = asyncio.Event()  # flush without waiting out the interval
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        meter = metrics.get_meter("m2x.storage")
        self._rows_histogram = meter.create_histogram(
            "m2x.storage.insert.rows", unit="{row}", description="Rows per INSERT of values"
        )

    # life cycle
    async def start(self) -> None:
        """Load what reads and writes need, insert what the WAL still holds, start flushing."""
        (newest,) = (await self.db.query(
            "SELECT greatest((SELECT max(version) FROM numeric_values), (SELECT max(version) FROM text_values))"
        ))[0]  # fmt: skip
        for (_account, device_id, stream), (first, point) in (await self.queries.spans_all()).items():  # fmt: skip
            self.earliest[(device_id, stream)] = first
            self.latest[(device_id, stream)] = point
        self.rewritten = await self.queries.rewritten_streams()
        await self._replay()
        # Everything stored before this start counts as handed out; new versions go above it
        # even if the clock went back.
        self._last_version = max(self._last_version, int(newest or 0))
        self.released_version = self._flushed_version = self._last_version
        self._task = asyncio.create_task(self._run(), name="series-flusher")

    async def close(self) -> None:
        """Insert what is buffered; the database stays open (its owner closes it)."""
        self._closing = True
        self._wake.set()
        self._hurry.set()
        if self._task is not None:
            await self._task
        self.wal.close()

    async def _replay(self) -> None:
        """Insert again the rows of WAL segments left by the last run.

        The last run may have stored any part of them (an INSERT stores one part per
        partition, each on its own), so all of them are doubtful: what a table holds from
        their lowest version on is deleted first. Everything a finished flush inserted has
        lower versions, as a flush inserts all that is buffered, in version order.
        """
        left = self.wal.open()
        if not left:
            return
        replayed, hours = 0, set()
        for number in left:
            for record in self.wal.read(number):
                for batch in read_record(record, (NUMERIC, TEXT)):
                    if batch.kind == NUMERIC:
                        hours.update(batch.hours())
                    ascending = batch.ascending()
                    self.rewritten |= self._rewrites(
                        batch.account_id, batch.device_id, [(batch, ascending)]
                    )
                    self._last_version = max(self._last_version, batch.last_version)
                    self._observe(batch, ascending)
                    self._doubt(batch.kind, batch.first_version)
                    self._buffer.batches[batch.kind].append(batch)
                    self._buffer.rows += batch.rows
                    replayed += batch.rows
        await self._persist_rewritten(self.rewritten - await self.queries.rewritten_streams())
        await self._flush()
        # The last run may have died after an INSERT of values and before the one of their
        # hourly aggregates (see _insert), or after both: the hours of what the WAL held are
        # aggregated again from the values.
        async with self.queries.hourly.repairing():
            await self.queries.hourly.aggregate_hours_again(hours)
        logger.info("replayed %d values from %d WAL segments", replayed, len(left))

    # writes
    def _versions(self, count: int) -> int:
        """First of `count` new versions: a nanosecond clock reading forced monotonic, so a
        later write orders after an earlier one even within one clock tick."""
        first = max(time.time_ns(), self._last_version + 1)
        self._last_version = first + count - 1
        return first

    async def write(self, account_id: str, device_id: str, numeric: Columns | Sequence[Part] = (),
                    text: Columns | Sequence[Part] = ()) -> int:  # fmt: skip
        """Store values (columns, or (stream, timestamps_ms, values) parts) of one device's
        numeric and alphanumeric streams; returns the rows stored, once durable."""
        return (await self.write_many([(account_id, device_id, numeric, text)]))[0]

    async def write_many(self, writes: Sequence[Write]) -> list[int]:
        """Store the values of several writes, in order; returns the rows each stored, once
        all are durable.

        The writes share one WAL append (one write(2)) and one wait for it: for the single
        values of many devices, that and the coroutine of each write used to cost more than
        their values (bench.adapter_cpu: storage CPU per single-value PUT). An error refuses
        them all, though the writes before a stream's first rewrite (see below) may be stored
        already; sending them again stores the same rows again, which replace the first.
        """
        await self._room()
        stored = [0] * len(writes)
        ready: list[_Ready] = []  # versioned, in the WAL with the next append, then buffered
        # (device, stream) -> newest timestamp of the ready writes: the `latest` they will set
        pending: dict[tuple[str, str], int] = {}
        for index, (account_id, device_id, numeric, text) in enumerate(writes):
            columns = {kind: given for kind, given in ((NUMERIC, _columns(numeric, True)),
                                                      (TEXT, _columns(text, False))) if given}  # fmt: skip
            if not columns:
                continue
            # Whether each stream's timestamps ascend, asked once for _rewrites and _observe.
            ascending = {kind: given.ascending() for kind, given in columns.items()}
            fresh = self._rewrites(account_id, device_id,
                                   [(given, ascending[kind]) for kind, given in columns.items()],
                                   pending)  # fmt: skip
            if fresh:  # rare: a stream's first timestamp written twice
                self._commit(ready)  # nothing awaits between taking versions and the WAL
                ready, pending = [], {}
                await self._persist_rewritten(fresh)
                self.rewritten |= fresh
            batches, newest = {}, {}
            for kind, given in columns.items():
                batch = Batch.of(kind, account_id, device_id, given, self._versions(given.rows))
                batches[kind] = batch
                newest[kind] = points = batch.newest(ascending[kind])
                for stream, stamp, _ in points:
                    key = (device_id, stream)
                    if stamp > pending.get(key, stamp - 1):
                        pending[key] = stamp
                stored[index] += batch.rows
            ready.append(_Ready(account_id, device_id, batches, ascending, newest,
                                self._last_version))  # fmt: skip
        self._commit(ready)
        await self.wal.synced()
        return stored

    def _commit(self, ready: Sequence[_Ready]) -> None:
        """Append the writes to the WAL, then to the buffer and `latest`, and hand them to
        the listeners: all of it in version order and without awaiting."""
        if not ready:
            return
        self.wal.append(*(write.record() for write in ready))
        if not self._buffer.rows:
            self._oldest = asyncio.get_running_loop().time()
        for write in ready:
            for kind, batch in write.batches.items():
                self._buffer.batches[kind].append(batch)
                self._buffer.rows += batch.rows
                self._observe(batch, write.ascending[kind], write.newest[kind])
            self._buffered_devices[(write.account_id, write.device_id)] = write.last_version
        self._wake.set()
        if self._buffer.rows >= self.flush_rows:
            self._hurry.set()
        self.released_version = self._last_version
        for write in ready:
            for listener in self.listeners:
                for batch in write.batches.values():
                    listener(batch)

    async def _room(self) -> None:
        """Wait while the rows buffered or being inserted reach `max_buffered_rows`.

        Writes then go at the pace ClickHouse takes them and memory stays bounded; a write
        that finds no room within `full_wait` seconds gets Unavailable (503).
        """
        if self._buffer.rows + self._inserting < self.max_buffered_rows:
            return
        deadline = asyncio.get_running_loop().time() + self.full_wait
        while self._buffer.rows + self._inserting >= self.max_buffered_rows:
            self._hurry.set()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._inserted.wait(), remaining)
            except TimeoutError:
                raise Unavailable("storage is behind on writing values to its database") from None

    def _observe(self, batch: Batch, ascending: bool,
                 newest: list[tuple[str, int, Any]] | None = None) -> None:  # fmt: skip
        """Note the batch's newest (`newest`: batch.newest(), computed if not given) and
        earliest values (`ascending`: batch.ascending())."""
        if newest is None:
            newest = batch.newest(ascending)
        earliest = batch.earliest(ascending)
        for (stream, stamp, value), first in zip(newest, earliest, strict=True):
            key = (batch.device_id, stream)
            current = self.latest.get(key)
            if current is None or stamp >= current[0]:
                self.latest[key] = (stamp, value)
            if first < self.earliest.get(key, first + 1):
                self.earliest[key] = first

    def _rewrites(self, account_id: str, device_id: str, columns: Iterable[tuple[Columns, bool]],
                  pending: dict[tuple[str, str], int] | None = None) -> set[StreamKey]:  # fmt: skip
        """Streams that become `rewritten` with these values (each with whether it is
        ascending, which rules out a timestamp repeating within a stream), given the newest
        timestamps of writes not observed yet (`pending`, by (device, stream))."""
        found = set()
        for given, ascending in columns:
            if not given.rows:
                continue
            earliest = given.earliest(ascending)
            for index, stream in enumerate(given.streams):
                key = (account_id, device_id, stream)
                if key in self.rewritten:
                    continue
                current = self.latest.get((device_id, stream))
                newest = current[0] if current is not None else None
                if pending and (waiting := pending.get((device_id, stream))) is not None:
                    newest = waiting if newest is None else max(newest, waiting)
                if newest is not None and earliest[index] <= newest:
                    found.add(key)
                elif not ascending and _repeats(given, index):
                    found.add(key)
        return found

    async def _persist_rewritten(self, keys: set[StreamKey]) -> None:
        if keys:
            await self.db.insert(
                "rewritten_streams", sorted(keys), ["account_id", "device_id", "stream"]
            )

    # flushing
    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._buffer.rows:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            remaining = self._oldest + self.flush_interval - asyncio.get_running_loop().time()
            if remaining > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), remaining)
            try:
                await self._flush()
                backoff = 0.1
            except Exception as exc:
                logger.warning("INSERT of buffered values failed, retrying: %r", exc)
                if self._closing:
                    return  # the rows stay in the WAL for the next start
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _flush(self) -> None:
        """Insert everything buffered, then retire the WAL segments that held it.

        Each table's rows go in version order, in INSERTs of about `flush_rows` rows (a
        bigger block costs ClickHouse more memory and gains little speed).
        """
        if not self._closing:
            self._hurry.clear()
        upto = self._last_version
        self.wal.seal()
        taken, self._buffer = self._buffer, _Buffer()
        self._inserting = taken.rows
        self.counters.flushes += 1
        try:
            await self._delete_doubtful()
            for kind, batches in taken.batches.items():
                while batches:
                    chunk = _chunk(batches, self.flush_rows)
                    try:
                        await self._insert(kind, chunk)
                    except Exception:
                        self._doubt(kind, chunk[0].first_version)
                        raise
                    del batches[: len(chunk)]
                    inserted = sum(b.rows for b in chunk)
                    taken.rows -= inserted
                    self._inserting -= inserted
        except Exception as exc:
            # Put back what was not inserted, before what was written meanwhile.
            self.counters.failed_flushes += 1
            for kind, batches in taken.batches.items():
                self._buffer.batches[kind][:0] = batches
            self._buffer.rows += taken.rows
            self._oldest = 0.0
            self._fail_waiters(exc)
            raise
        finally:
            self._inserting = 0
            self._inserted.set()
            self._inserted = asyncio.Event()
        self.wal.retire()
        self._flushed_version = upto
        self._buffered_devices = {k: v for k, v in self._buffered_devices.items() if v > upto}
        waiting, self._waiters = self._waiters, []
        for version, waiter in waiting:
            if version <= upto:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                self._waiters.append((version, waiter))

    def _doubt(self, kind: str, version: int) -> None:
        self._doubtful[kind] = min(self._doubtful.get(kind, version), version)

    async def _delete_doubtful(self) -> None:
        """Delete the rows failed INSERTs may have stored: the flush inserts them again (all
        rows from the lowest doubtful version on are in it, in the buffer or the WAL)."""
        for kind, version in list(self._doubtful.items()):
            await self.db.command(
                f"DELETE FROM {_TABLES[kind]} WHERE version >= {{version:UInt64}}",
                {"version": version},
            )
            del self._doubtful[kind]

    async def _insert(self, kind: str, batches: list[Batch]) -> None:
        table = arrow_table(batches)
        await self.db.insert_arrow(_TABLES[kind], table, _INSERT_SETTINGS)
        if kind == NUMERIC:
            await self._insert_hours(hourly_table(table))
        self.counters.inserts += 1
        self.counters.rows += table.num_rows
        self._rows_histogram.record(table.num_rows, {"table": _TABLES[kind]})

    async def _insert_hours(self, hours: pa.Table) -> None:
        """Insert the hourly aggregates of values just inserted. A failed INSERT may have
        stored them all the same, so those hours are then aggregated again from the values,
        until that works: a failure must not put the values back in the buffer, to be
        inserted twice. Given up only when closing; the WAL still holds the values then, and
        the next start aggregates their hours again."""

        async def insert() -> None:
            await self.db.insert_arrow("numeric_hourly", hours)

        async def aggregate_again() -> None:
            keys = set(zip(*(hours.column(name).to_pylist() for name in _HOUR_KEY), strict=True))
            async with self.queries.hourly.repairing():
                await self.queries.hourly.aggregate_hours_again(keys)

        attempt, backoff = insert, 0.1
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                self.counters.failed_hourly_inserts += 1
                if self._closing:
                    raise
                logger.warning("hourly aggregates not stored, aggregating again: %r", exc)
            attempt = aggregate_again
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _fail_waiters(self, exc: Exception) -> None:
        waiting, self._waiters = self._waiters, []
        for _, waiter in waiting:
            if not waiter.done():
                waiter.set_exception(Unavailable(f"values could not be stored yet: {exc!r}"))

    async def _flushed(self, version: int) -> None:
        """Return once every write up to `version` is in ClickHouse."""
        if version <= self._flushed_version:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((version, waiter))
        self._hurry.set()
        await waiter

    async def visible(self, account_id: str, device_id: str) -> None:
        """Make the device's buffered writes readable in ClickHouse."""
        version = self._buffered_devices.get((account_id, device_id))
        if version is not None:
            await self._flushed(version)

    async def flush(self) -> None:
        """Return once everything written so far is in ClickHouse."""
        await self._flushed(self._last_version)

    # deletes: what is buffered goes in first, so the delete also removes it (and a WAL
    # replay never brings deleted rows back)
    async def delete_range(
        self, account_id: str, device_id: str, stream: str, kind: str, from_ms: int, end_ms: int
    ) -> None:
        """Delete the stream's values with from_ms <= timestamp <= end_ms."""
        written = await self._deleting(
            account_id, device_id,
            lambda: self.queries.delete_range(account_id, device_id, stream, kind, from_ms, end_ms),
        )  # fmt: skip
        await self._distrust(written & {(account_id, device_id, stream)})

    async def delete_stream(self, account_id: str, device_id: str, stream: str) -> None:
        """Delete every value of the stream, of either kind."""
        written = await self._deleting(
            account_id, device_id, lambda: self.queries.delete_stream(account_id, device_id, stream)
        )
        self.latest.pop((device_id, stream), None)
        self.earliest.pop((device_id, stream), None)
        self.rewritten.discard((account_id, device_id, stream))
        await self._distrust(written & {(account_id, device_id, stream)})

    async def delete_device(self, account_id: str, device_id: str) -> None:
        written = await self._deleting(
            account_id, device_id, lambda: self.queries.delete_device(account_id, device_id)
        )
        for key in [k for k in self.latest if k[0] == device_id]:
            del self.latest[key]
        for key in [k for k in self.earliest if k[0] == device_id]:
            del self.earliest[key]
        self.rewritten = {k for k in self.rewritten if k[:2] != (account_id, device_id)}
        await self._distrust(written)

    async def _deleting(
        self, account_id: str, device_id: str, delete: Callable[[], Any]
    ) -> set[StreamKey]:
        """Run `delete` once what is buffered is inserted; the device's streams written meanwhile.

        A delete fixes the stream's hourly aggregates (numeric_hourly) apart from its rows: a
        row inserted between the two may be counted twice there, or survive in one only.
        """
        written: set[StreamKey] = set()

        def note(batch: Batch) -> None:
            if batch.account_id == account_id and batch.device_id == device_id:
                written.update((account_id, device_id, stream) for stream in batch.streams)

        self.listeners.append(note)
        # Tails of the device are dropped now, so that reads meanwhile ask ClickHouse, and
        # again once done, as a read meanwhile may have kept one of what is being deleted.
        self.recent.forget_device(account_id, device_id)
        try:
            await self.flush()
            await delete()
        finally:
            self.listeners.remove(note)
            self.recent.forget_device(account_id, device_id)
        return written

    async def _distrust(self, keys: set[StreamKey]) -> None:
        """Streams written while they were being deleted from: from now on read them like
        rewritten streams (from the values table, FINAL), not from hourly aggregates."""
        fresh = keys - self.rewritten
        if fresh:
            await self._persist_rewritten(fresh)
            self.rewritten |= fresh

    # reads
    def _final(self, account_id: str, device_id: str, stream: str) -> bool:
        return (account_id, device_id, stream) in self.rewritten

    def rewritten_any(self, account_id: str, device_id: str, streams: Sequence[str]) -> bool:
        """Whether reads of these streams (every stream of the device when none are named)
        need FINAL: one of them may hold a timestamp twice."""
        if streams:
            return any(self._final(account_id, device_id, stream) for stream in streams)
        return any(key[:2] == (account_id, device_id) for key in self.rewritten)

    async def since(
        self, devices: list[tuple[str, str]], after_version: int, upto_version: int, limit: int
    ) -> list[StoredRow]:
        """Rows of the (account, device) pairs with after < version <= upto, oldest first."""
        await self._flushed(upto_version)
        return await self.queries.since(devices, after_version, upto_version, limit)

    async def _read(self, method: Callable[..., Any], account_id: str, device_id: str,
                    streams: Iterable[str], *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        """`method` without FINAL and hourly aggregates allowed if no stream read is rewritten,
        and again with FINAL if a write made one so while it ran (it may have seen both rows)."""
        await self.visible(account_id, device_id)
        streams = list(streams)
        if len(streams) == 1 and self._final(account_id, device_id, streams[0]):
            await self._settle(account_id, device_id, streams[0])
        final = any(self._final(account_id, device_id, s) for s in streams)
        answer = await method(account_id, device_id, *args, final=final, **kwargs)
        if not final and any(self._final(account_id, device_id, s) for s in streams):
            answer = await method(account_id, device_id, *args, final=True, **kwargs)
        return answer

    async def _settle(self, account_id: str, device_id: str, stream: str) -> None:
        """A rewritten stream is read without FINAL again once ValueQueries.settle made each
        timestamp appear once (a late value for a new timestamp, e.g. from writers racing
        each other, marks a stream rewritten too); tried when it is read, at most once a
        minute, and not if the stream was written meanwhile."""
        key = (account_id, device_id, stream)
        if not self.queries.may_settle(key):
            return
        settled = False

        async def settle() -> None:
            nonlocal settled
            settled = await self.queries.settle(account_id, device_id, stream)
            if settled:
                await self.queries.forget_rewritten(account_id, device_id, stream)

        written = await self._deleting(account_id, device_id, settle)
        if settled and key in written:  # keep it rewritten, also after a restart
            await self._persist_rewritten({key})
        elif settled:
            # No await since the listener was removed: every write that saw the stream
            # rewritten was noted; later ones see it append-only and mark it if need be.
            self.rewritten.discard(key)

    async def latest_point(self, account_id: str, device_id: str, stream: str, kind: str) -> Point | None:  # fmt: skip
        point: Point | None = await self._read(self.queries.latest, account_id, device_id, [stream], stream, kind)  # fmt: skip
        return point

    async def list(self, account_id: str, device_id: str, stream: str, kind: str,
                   start_ms: int = 0, end_ms: int = 0, min: float | None = None,
                   max: float | None = None, limit: int = 100, sort: str = "timestamp",
                   dir: str = "desc") -> Points:  # fmt: skip
        """ValueQueries.list; the newest values (no range, no filter) from memory when the
        stream's tail holds them, else from ClickHouse, keeping a tail of them."""
        read = functools.partial(self._read, self.queries.list, account_id, device_id, [stream])
        filtered = start_ms or end_ms or min is not None or max is not None
        if filtered or sort != "timestamp" or dir != "desc" or limit > TAIL:
            points: Points = await read(stream, kind, start_ms, end_ms, min, max, limit, sort, dir)
            return points
        key = (account_id, device_id, stream, kind)
        newest = self.recent.newest(key, limit)
        if newest is not None:
            self.counters.recent_reads += 1
            return newest
        tail = self.recent.start_filling(key)  # before _read makes the writes visible
        try:
            points = await read(stream, kind, limit=TAIL)
        except BaseException:
            self.recent.abandon(key, tail)
            raise
        self.recent.finish_filling(tail, points)
        return points[:limit]

    def _window(self, device_id: str, stream: str, start_ms: int, end_ms: int) -> tuple[int, int]:
        """start_ms and end_ms, each 0 (unbounded) where it holds every stored value of the
        stream: aggregates over a window that covers the values it has read whole hours only,
        even when the window's ends cut hours."""
        earliest, latest = self.earliest.get((device_id, stream)), self.latest.get((device_id, stream))  # fmt: skip
        if earliest is not None and start_ms <= earliest:
            start_ms = 0
        if latest is not None and end_ms >= latest[0]:
            end_ms = 0
        return start_ms, end_ms

    async def sample(self, account_id: str, device_id: str, stream: str, type: str,
                     interval: int, start_ms: int = 0, end_ms: int = 0,
                     *args: Any, **kwargs: Any) -> Samples:  # fmt: skip
        start_ms, end_ms = self._window(device_id, stream, start_ms, end_ms)
        samples: Samples = await self._read(self.queries.sample, account_id, device_id, [stream],
                                            stream, type, interval, start_ms, end_ms,
                                            *args, **kwargs)  # fmt: skip
        return samples

    async def stats(self, account_id: str, device_id: str, stream: str, start_ms: int = 0,
                    end_ms: int = 0, *args: Any, **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        start_ms, end_ms = self._window(device_id, stream, start_ms, end_ms)
        stats: dict[str, Any] = await self._read(self.queries.stats, account_id, device_id,
                                                 [stream], stream, start_ms, end_ms,
                                                 *args, **kwargs)  # fmt: skip
        return stats

    async def device_rows(self, account_id: str, device_id: str, streams: dict[str, str],
                          *args: Any, **kwargs: Any) -> Rows:  # fmt: skip
        rows: Rows = await self._read(self.queries.device_rows, account_id, device_id, streams,
                                      streams, *args, **kwargs)  # fmt: skip
        return rows


def _repeats(columns: Columns, index: int) -> bool:
    """Whether a timestamp appears twice among the values of the index-th stream."""
    start = columns.starts()[index]
    stamps = columns.stamps[start : start + columns.counts[index]]
    if len(stamps) < 2 or bool((stamps[1:] > stamps[:-1]).all()):
        return False
    return len(np.unique(stamps)) < len(stamps)


def _chunk(batches: list[Batch], rows: int) -> list[Batch]:
    """The first batches, up to about `rows` rows (at least one batch)."""
    total = 0
    for count, batch in enumerate(batches):
        total += batch.rows
        if total >= rows:
            return batches[: count + 1]
    return batches
