"""The newest values of streams that are read, kept in memory: the read devices and dashboards
make most (GET .../values, the last 100) is answered without a ClickHouse query.

Planning a query costs chDB a few milliseconds whatever it reads (the last 100 of 1M values:
~7 ms on a 2-core machine, `SELECT 1`: ~1 ms), more than all the rest of such a request. A
stream gets a tail here when it is first read that way: its newest `TAIL` values from
ClickHouse, then every write to it as it is made durable (`Series.listeners`, in version
order, so a later write at a timestamp replaces an earlier one). Deletes drop the tails of
their device (before and after they run), so the next read fills them again. At most
`MAX_TAILS` streams keep one (the least recently read gives its up), ~6 kB each.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import Any

import numpy as np

from services.storage.batches import Batch

TAIL = 100  # values kept per stream: the default page of a values list
MAX_TAILS = 4096

Key = tuple[str, str, str, str]  # account, device, stream, kind
Point = tuple[int, Any]


class Tail:
    """A stream's newest values, ascending by timestamp. `complete`: the stream has no others.

    While filling (ClickHouse is being asked for the newest values), writes are kept aside;
    they are newer than anything the answer may hold, so they win at a timestamp.
    """

    __slots__ = ("complete", "filling", "stamps", "values")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.values: list[Any] = []
        self.complete = False
        self.filling: dict[int, Any] | None = {}

    def fill(self, stored: list[Point]) -> None:
        """Install ClickHouse's newest (at most TAIL) values, newest first, and the writes
        made meanwhile."""
        written, self.filling = self.filling or {}, None
        self.complete = len(stored) < TAIL
        for stamp, value in reversed(stored):
            self.stamps.append(stamp)
            self.values.append(value)
        for stamp, value in written.items():
            self.add(stamp, value)

    def add(self, stamp: int, value: Any) -> None:
        if self.filling is not None:
            self.filling[stamp] = value
            return
        stamps = self.stamps
        if not self.complete and (not stamps or stamp < stamps[0]):
            return  # older than the newest TAIL values: they stay the newest
        at = bisect.bisect_left(stamps, stamp)
        if at < len(stamps) and stamps[at] == stamp:
            self.values[at] = value
            return
        stamps.insert(at, stamp)
        self.values.insert(at, value)
        if len(stamps) > TAIL:
            del stamps[0], self.values[0]
            self.complete = False

    def newest(self, limit: int) -> list[Point] | None:
        """The newest `limit` values, newest first; None if the tail cannot tell."""
        if self.filling is not None or (limit > len(self.stamps) and not self.complete):
            return None
        start = max(len(self.stamps) - limit, 0)
        return list(zip(reversed(self.stamps[start:]), reversed(self.values[start:]), strict=True))


class RecentValues:
    def __init__(self, max_tails: int = MAX_TAILS) -> None:
        self.max_tails = max_tails
        self._tails: OrderedDict[Key, Tail] = OrderedDict()
        self._by_device: dict[tuple[str, str], set[Key]] = {}  # keeps writes of others quick

    def newest(self, key: Key, limit: int) -> list[Point] | None:
        """The stream's newest `limit` values if its tail holds them."""
        tail = self._tails.get(key)
        if tail is None or limit > TAIL:
            return None
        self._tails.move_to_end(key)
        return tail.newest(limit)

    def start_filling(self, key: Key) -> Tail:
        """A new, filling tail for `key`; call before making the device's writes visible in
        ClickHouse, so that each write is either in the answer or seen by the tail."""
        tail = self._tails[key] = Tail()
        self._tails.move_to_end(key)
        self._by_device.setdefault(key[:2], set()).add(key)
        while len(self._tails) > self.max_tails:
            self._drop(next(iter(self._tails)))
        return tail

    def finish_filling(self, tail: Tail, stored: list[Point]) -> None:
        """Install ClickHouse's answer (in vain if a delete dropped the tail meanwhile)."""
        tail.fill(stored)

    def abandon(self, key: Key, tail: Tail) -> None:
        """Drop a tail whose filling failed."""
        if self._tails.get(key) is tail:
            self._drop(key)

    def forget_device(self, account_id: str, device_id: str) -> None:
        for key in list(self._by_device.get((account_id, device_id), ())):
            self._drop(key)

    def _drop(self, key: Key) -> None:
        del self._tails[key]
        keys = self._by_device[key[:2]]
        keys.discard(key)
        if not keys:
            del self._by_device[key[:2]]

    def written(self, batch: Batch) -> None:
        """A durable write (a Series listener)."""
        keys = self._by_device.get((batch.account_id, batch.device_id))
        if keys is None:
            return
        for stream, stamps, values in batch.parts():
            tail = self._tails.get((batch.account_id, batch.device_id, stream, batch.kind))
            if tail is not None:
                plain = values.tolist() if isinstance(values, np.ndarray) else values
                for stamp, value in zip(stamps.tolist(), plain, strict=True):
                    tail.add(stamp, value)
