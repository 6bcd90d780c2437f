"""Hourly aggregates of numeric values (numeric_hourly, migrations 0005 and 0007): stats and
sampling by whole hours read from them, and deletes fix them.

Every INSERT into numeric_values is followed by one into numeric_hourly (`hourly_table`, made
from the same Arrow table) with a row per run of a stream's values within an hour: count,
sum, min, max, sum of squares and the first and last timestamp; rows of one hour merge in the
background. They also count rows a later write replaced, so only streams that hold each
timestamp once may be read from here (ValueQueries decides).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from m2x.runtime.clickhouse import Database

HOUR_MS = 3_600_000
_HOUR = "toUnixTimestamp64Milli(ts) - positiveModulo(toUnixTimestamp64Milli(ts), 3600000)"
# name -> (its numeric_hourly column, the same aggregated over numeric_values)
PARTIALS = {
    "c": ("count", "count()"), "s": ("sum", "sum(value)"), "lo": ("min", "min(value)"),
    "hi": ("max", "max(value)"), "q": ("sumsq", "sum(value * value)"),
    "f": ("first_ms", "min(toUnixTimestamp64Milli(ts))"),
    "l": ("last_ms", "max(toUnixTimestamp64Milli(ts))"),
}  # fmt: skip
# stddevPop as ClickHouse computes it (VarMoments::getPopulation), from the sums.
STDDEV = "sqrt(greatest((sum(q) - sum(s) * sum(s) / sum(c)) / sum(c), 0))"
MERGES = {  # sampling type -> (merge of partials, partials it needs)
    "min": ("min(lo)", ("lo",)), "max": ("max(hi)", ("hi",)),
    "count": ("toFloat64(sum(c))", ("c",)), "avg": ("sum(s) / sum(c)", ("s", "c")),
    "sum": ("sum(s)", ("s",)), "stddev": (STDDEV, ("q", "s", "c")),
}  # fmt: skip
_AGGREGATE = (
    "INSERT INTO numeric_hourly (account_id, device_id, stream, hour, count, sum, min, max,"
    f" sumsq, first_ms, last_ms) SELECT account_id, device_id, stream, {_HOUR} AS hour,"
    f" {', '.join(values for _, values in PARTIALS.values())} FROM numeric_values"
    " WHERE {where} GROUP BY account_id, device_id, stream, hour"
)
_HOURS_PER_REPAIR = 5_000
_KEYS = ("account_id", "device_id", "stream")
_TS_FROM = "ts >= fromUnixTimestamp64Milli({%s:Int64}, 'UTC')"
_TS_BEFORE = "ts < fromUnixTimestamp64Milli({%s:Int64}, 'UTC')"


def hourly_table(values: pa.Table) -> pa.Table:
    """numeric_hourly rows of the numeric_values rows in `values` (as batches.arrow_table
    makes them): one per run of rows of one stream within one hour.

    Rows come stream after stream, each stream's mostly in time order, so a run ends where
    the stream or the hour changes; numpy reduces each run. Runs of the same hour (a stream
    written in several requests) become rows that ClickHouse merges.
    """
    columns = [values.column(name).combine_chunks() for name in _KEYS]
    codes = [column.indices.to_numpy() for column in columns]
    stamps = values.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    numbers = values.column("value").combine_chunks().to_numpy()
    hours = stamps - stamps % HOUR_MS  # numpy's % has the divisor's sign, as positiveModulo
    changed = hours[1:] != hours[:-1]
    for code in codes:
        changed |= code[1:] != code[:-1]
    starts = np.flatnonzero(np.concatenate(([True], changed)))
    counts = np.diff(starts, append=len(stamps))
    return pa.table({
        **{name: pa.DictionaryArray.from_arrays(code[starts], column.dictionary)
           for name, code, column in zip(_KEYS, codes, columns, strict=True)},
        "hour": pa.array(hours[starts]),
        "count": pa.array(counts.astype(np.uint64)),
        "sum": pa.array(np.add.reduceat(numbers, starts)),
        "min": pa.array(np.minimum.reduceat(numbers, starts)),
        "max": pa.array(np.maximum.reduceat(numbers, starts)),
        "sumsq": pa.array(np.add.reduceat(numbers * numbers, starts)),
        "first_ms": pa.array(np.minimum.reduceat(stamps, starts)),
        "last_ms": pa.array(np.maximum.reduceat(stamps, starts)),
    })  # fmt: skip


def scope(account_id: str, device_id: str, stream: str | None) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (and its parameters) of one device's rows, or one stream's, in any
    values table; shared with ValueQueries."""
    where, params = "account_id = {account:String} AND device_id = {device:String}", {
        "account": account_id, "device": device_id
    }  # fmt: skip
    if stream is not None:
        where, params["stream"] = where + " AND stream = {stream:String}", stream
    return where, params


def _touched(
    outer: str,
    account_id: str,
    device_id: str,
    stream: str,
    start_ms: int,
    end_ms: int,
    names: list[str],
) -> tuple[str, dict[str, Any]]:
    """`outer` over the numeric_hourly rows of every hour that start_ms <= timestamp <=
    end_ms (0: unbounded) touches, also the hours it cuts.

    `outer` reads the table itself, its partials named by a WITH clause: a subquery would
    cost ClickHouse ~0.4 ms more to plan, a sixth of such a read.
    """
    where, params = scope(account_id, device_id, stream)
    if start_ms:
        params["from_hour"] = start_ms // HOUR_MS * HOUR_MS
        where += " AND hour >= {from_hour:Int64}"
    if end_ms:
        params["to_hour"] = end_ms // HOUR_MS * HOUR_MS
        where += " AND hour <= {to_hour:Int64}"
    aliases = ", ".join(f"{PARTIALS[n][0]} AS {n}" for n in names)
    return f"WITH {aliases} " + outer.replace("({rows})", f"numeric_hourly WHERE {where}"), params


def _cut(
    account_id: str, device_id: str, stream: str, start_ms: int, end_ms: int, names: list[str]
) -> tuple[str, dict[str, Any]]:
    """Rows over start_ms <= timestamp <= end_ms: the hours wholly inside from numeric_hourly,
    the ones it cuts aggregated from numeric_values."""
    key, params = scope(account_id, device_id, stream)
    columns = ", ".join(f"{PARTIALS[n][0]} AS {n}" for n in names)
    sql = f"SELECT hour, {columns} FROM numeric_hourly WHERE {key}"
    inside, edges = [], []
    if start_ms:  # hours from the first whole one on
        params.update(start=start_ms, first=-(-start_ms // HOUR_MS) * HOUR_MS)
        sql += " AND hour >= {first:Int64}"
        inside.append(_TS_FROM % "start")
        edges.append(_TS_BEFORE % "first")
    if end_ms:  # hours that end at or before end_ms
        params.update(end=end_ms + 1, stop=(end_ms + 1) // HOUR_MS * HOUR_MS)
        sql += " AND hour < {stop:Int64}"
        inside.append(_TS_BEFORE % "end")
        edges.append(_TS_FROM % "stop")
    if not edges:
        return sql, params
    values = ", ".join(f"{PARTIALS[n][1]} AS {n}" for n in names)
    return (
        f"{sql} UNION ALL SELECT {_HOUR} AS hour, {values} FROM numeric_values WHERE {key}"
        f" AND {' AND '.join(inside)} AND ({' OR '.join(edges)}) GROUP BY hour"
    ), params


class Hourly:
    """Reads and repairs of numeric_hourly. Repairs run one at a time; a read that overlaps
    one answers None (the caller reads numeric_values instead)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = asyncio.Lock()
        self._running = 0
        self._changes = 0  # repairs started or finished so far

    @contextlib.asynccontextmanager
    async def repairing(self) -> AsyncIterator[None]:
        """Hold while numeric_hourly and numeric_values may disagree."""
        async with self._lock:
            self._running += 1
            self._changes += 1
            try:
                yield
            finally:
                self._running -= 1
                self._changes += 1

    async def query(
        self,
        outer: str,
        params: dict[str, Any],
        key: tuple[str, str, str],
        start_ms: int,
        end_ms: int,
        partials: Iterable[str],
    ) -> list[tuple[Any, ...]] | None:
        """Rows of `outer` over `({rows})`, (hour, partials..., f, l) rows of the stream `key`
        in start_ms <= timestamp <= end_ms; the last two columns of `outer` must be min(f),
        max(l) and are not returned.

        First over every hour the range touches: exact if the values of the hours it cuts
        all lie inside it, as min(f) and max(l) tell. Else with the cut hours aggregated
        from numeric_values. None if a repair ran meanwhile.
        """
        seen, names = self._changes, [*partials, "f", "l"]
        if self._running:
            return None
        sql, rows_params = _touched(outer, *key, start_ms, end_ms, names)
        rows = await self.db.query(sql, {**params, **rows_params})
        if not all(
            (not start_ms or row[-2] >= start_ms) and (not end_ms or row[-1] <= end_ms)
            for row in rows
        ):
            sql, rows_params = _cut(*key, start_ms, end_ms, names)
            rows = await self.db.query(outer.replace("{rows}", sql), {**params, **rows_params})
        return [row[:-2] for row in rows] if self._changes == seen else None

    async def aggregate_again(self, key: tuple[str, str, str], from_ms: int, end_ms: int) -> None:
        """Aggregate again the stream's hours that from_ms..end_ms touches (0, 0: all of them)
        from numeric_values. Hold `repairing` around the change of values and this."""
        where, params = scope(*key)
        if from_ms or end_ms:
            params.update(first=from_ms // HOUR_MS * HOUR_MS, stop=end_ms // HOUR_MS * HOUR_MS + HOUR_MS)  # fmt: skip
            await self.db.command(
                f"DELETE FROM numeric_hourly WHERE {where}"
                " AND hour >= {first:Int64} AND hour < {stop:Int64}",
                params,
            )
            where += f" AND {_TS_FROM % 'first'} AND {_TS_BEFORE % 'stop'}"
        else:
            await self.db.command(f"DELETE FROM numeric_hourly WHERE {where}", params)
        await self.db.command(_AGGREGATE.format(where=where), params)

    async def aggregate_hours_again(self, hours: Iterable[tuple[str, str, str, int]]) -> None:
        """Aggregate again these (account, device, stream, hour) hours from numeric_values, a
        few thousand per statement. Hold `repairing` around it."""
        chosen = "(account_id, device_id, stream, {hour}) IN (SELECT arrayJoin({hours:Array(Tuple(String, String, String, Int64))}))"  # fmt: skip
        keys = sorted(hours)
        for start in range(0, len(keys), _HOURS_PER_REPAIR):
            params = {"hours": keys[start : start + _HOURS_PER_REPAIR]}
            await self.db.command(f"DELETE FROM numeric_hourly WHERE {chosen.replace('{hour}', 'hour')}", params)  # fmt: skip
            await self.db.command(_AGGREGATE.format(where=chosen.replace("{hour}", _HOUR)), params)

    async def drop(self, account_id: str, device_id: str, stream: str | None = None) -> None:
        """Delete the hours of a stream, or of every stream of a device."""
        where, params = scope(account_id, device_id, stream)
        await self.db.command(f"DELETE FROM numeric_hourly WHERE {where}", params)

    async def size(self, key: tuple[str, str, str]) -> int:
        """Values of the stream counted in numeric_hourly (a replaced one counts too)."""
        where, params = scope(*key)
        rows = await self.db.query(f"SELECT sum(count) FROM numeric_hourly WHERE {where}", params)
        return int(rows[0][0])
