"""SQL over stored values: reads of one stream or one device, the triggers feed's replay,
and range deletes. Rows still in the write buffer are not seen here: Series makes them
visible (flushes them) before it calls in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from m2x.runtime.clickhouse import Database
from services.storage.hourly import MERGES, STDDEV, Hourly, scope

NUMERIC, TEXT = "numeric", "alphanumeric"
_TABLES = {NUMERIC: "numeric_values", TEXT: "text_values"}
_COLUMNS = ["account_id", "device_id", "stream", "ts", "value", "version"]
# Given to clickhouse-connect so that an INSERT does not first ask the server for them.
_TYPES = {
    kind: ["LowCardinality(String)", "String", "String", "DateTime64(3, 'UTC')", value, "UInt64"]
    for kind, value in ((NUMERIC, "Float64"), (TEXT, "String"))
}
# Deletes as patch parts: a few ms each, where the default mutation rewrote every part.
_DELETE_SETTINGS = "SETTINGS lightweight_delete_mode = 'lightweight_update_force'"
_AGGREGATES = {
    "min": "min(value)", "max": "max(value)", "count": "toFloat64(count())",
    "avg": "avg(value)", "sum": "sum(value)", "stddev": "stddevPop(value)",
}  # fmt: skip
_NTH = (
    "SELECT t, v FROM (SELECT t, v, row_number() OVER (ORDER BY t DESC) AS n FROM"
    " (SELECT toUnixTimestamp64Milli(ts) AS t, value AS v FROM numeric_values{final}"
    " WHERE {where} ORDER BY ts DESC LIMIT {{scan:UInt64}}))"
    " WHERE n % {{interval:UInt64}} = 0 ORDER BY t DESC LIMIT {{limit:UInt64}}"
)
_BUCKETS = (
    "SELECT toUnixTimestamp64Milli(ts) - positiveModulo(toUnixTimestamp64Milli(ts),"
    " {{interval:Int64}} * 1000) AS bucket, {f} FROM numeric_values{final} WHERE {where}"
    " GROUP BY bucket ORDER BY bucket DESC LIMIT {{limit:UInt64}}"
)
# A rewritten stream is settled (see ValueQueries.settle) if it holds at least _SETTLE_ROWS
# values (FINAL costs little below) and a later write replaced at most _MAX_REPLACED of them.
_SETTLE_ROWS = 10_000
_MAX_REPLACED = 100_000
_SETTLE_EVERY = 60.0  # seconds between attempts to settle one stream
_SORTS = {"timestamp": "ts", "value": "value"}
_DIRS = {"asc": "ASC", "desc": "DESC"}
_NUMERIC_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "match": "="}
_TEXT_OPS = {"eq": "=", "match": "="}

Value = float | str
Point = tuple[int, Value]
Points = list[Point]
Parts = Sequence[tuple[str, Sequence[int], Sequence[Any]]]
Samples = list[tuple[int, float]]
StoredRow = tuple[str, str, str, int, Value, int]  # account, device, stream, ts, value, version
Rows = list[tuple[int, dict[str, Value]]]  # `list` is also a method name of Series


def _final(final: bool) -> str:
    return " FINAL" if final else ""


def _table(kind: str) -> str:
    try:
        return _TABLES[kind]
    except KeyError:
        raise ValueError(f"kind must be numeric or alphanumeric, not {kind!r}") from None


def _where(
    account_id: str,
    device_id: str,
    stream: str | None = None,
    start_ms: int = 0,
    end_ms: int = 0,
    lo: float | None = None,
    hi: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """A WHERE clause over one device's rows; user values travel as server-side parameters."""
    where, params = scope(account_id, device_id, stream)
    clauses = [where]
    optional = (
        ("ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')", "start", start_ms or None),
        ("ts <= fromUnixTimestamp64Milli({end:Int64}, 'UTC')", "end", end_ms or None),
        ("value >= {lo:Float64}", "lo", lo),
        ("value <= {hi:Float64}", "hi", hi),
    )
    for clause, name, value in optional:
        if value is not None:
            clauses.append(clause)
            params[name] = value
    return " AND ".join(clauses), params


class ValueQueries:
    """Queries of `numeric_values` and `text_values`; every one is scoped by account and device."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.hourly = Hourly(db)
        self._settle_after: dict[tuple[str, str, str], float] = {}  # -> time.monotonic()

    async def since(
        self, devices: list[tuple[str, str]], after_version: int, upto_version: int, limit: int
    ) -> list[StoredRow]:
        """Rows of the (account, device) pairs with after < version <= upto, oldest write first.

        Not FINAL: a consumer of writes wants every write, also one a later write replaced
        (until a merge removes it).
        """
        if not devices:
            return []
        selects = [
            f"SELECT account_id, device_id, stream, toUnixTimestamp64Milli(ts) AS t, {num} AS num, "
            f"{txt} AS txt, {is_num} AS is_num, version FROM {table} "
            "WHERE (account_id, device_id) IN {devices:Array(Tuple(String, String))} "
            "AND version > {after:UInt64} AND version <= {upto:UInt64}"
            for table, num, txt, is_num in (
                ("numeric_values", "value", "''", 1),
                ("text_values", "toFloat64(0)", "value", 0),
            )
        ]
        rows = await self.db.query(
            f"SELECT * FROM ({' UNION ALL '.join(selects)}) ORDER BY version LIMIT {{limit:UInt32}}",
            {"devices": devices, "after": after_version, "upto": upto_version, "limit": limit},
        )
        return [
            (account, device, stream, ts, num if is_num else txt, version)
            for account, device, stream, ts, num, txt, is_num, version in rows
        ]

    # deletes
    async def _delete(self, table: str, where: str, params: dict[str, Any]) -> None:
        await self.db.command(f"DELETE FROM {table} WHERE {where} {_DELETE_SETTINGS}", params)

    async def delete_range(
        self, account_id: str, device_id: str, stream: str, kind: str, from_ms: int, end_ms: int
    ) -> None:
        """Delete the stream's values with from_ms <= timestamp <= end_ms.

        The hours touched are then aggregated again in numeric_hourly from what is left.
        """
        where, params = _where(account_id, device_id, stream)
        async with self.hourly.repairing():
            await self._delete(
                _table(kind),
                f"{where} AND ts >= fromUnixTimestamp64Milli({{from:Int64}}, 'UTC')"
                " AND ts <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')",
                {**params, "from": from_ms, "to": end_ms},
            )
            if kind == NUMERIC:
                await self.hourly.aggregate_again((account_id, device_id, stream), from_ms, end_ms)

    async def delete_stream(self, account_id: str, device_id: str, stream: str) -> None:
        """Delete every value of the stream, of either kind."""
        await self._delete_all(account_id, device_id, stream)

    async def delete_device(self, account_id: str, device_id: str) -> None:
        await self._delete_all(account_id, device_id)

    async def _delete_all(self, account_id: str, device_id: str, stream: str | None = None) -> None:
        where, params = _where(account_id, device_id, stream)
        async with self.hourly.repairing():
            await asyncio.gather(*(self._delete(t, where, params) for t in _TABLES.values()))
            await self.hourly.drop(account_id, device_id, stream)
            await self.db.command(f"DELETE FROM rewritten_streams WHERE {where}", params)

    def may_settle(self, key: tuple[str, str, str]) -> bool:
        """Whether to try `settle` on the stream now: at most once every _SETTLE_EVERY s."""
        now = time.monotonic()
        if self._settle_after.get(key, 0.0) > now:
            return False
        if len(self._settle_after) > 10_000:
            self._settle_after = {k: t for k, t in self._settle_after.items() if t > now}
        self._settle_after[key] = now + _SETTLE_EVERY
        return True

    async def settle(self, account_id: str, device_id: str, stream: str) -> bool:
        """Make a stream whose timestamps may repeat hold each timestamp once: delete the rows
        a later write replaced, aggregate its hours again. False if not worth it or too many
        were replaced. Whoever calls must make sure no write of the stream was inserted
        meanwhile.
        """
        key = (account_id, device_id, stream)
        where, params = _where(*key)
        ((texts,),) = await self.db.query(f"SELECT count() FROM text_values WHERE {where}", params)
        if texts + await self.hourly.size(key) < _SETTLE_ROWS:
            return False
        async with self.hourly.repairing():
            for table in _TABLES.values():
                replaced = await self.db.query(
                    "SELECT toUnixTimestamp64Milli(ts) AS t, arrayJoin(arrayFilter(v -> v <"
                    f" max(version), groupArray(version))) FROM {table} WHERE {where}"
                    " GROUP BY account_id, device_id, stream, ts HAVING count() > 1"
                    f" LIMIT {_MAX_REPLACED + 1} SETTINGS optimize_aggregation_in_order = 1",
                    params,
                )
                if len(replaced) > _MAX_REPLACED:
                    return False
                if replaced:
                    await self._delete(
                        table,
                        f"{where} AND (toUnixTimestamp64Milli(ts), version) IN"
                        " {replaced:Array(Tuple(Int64, UInt64))}",
                        {**params, "replaced": replaced},
                    )
            await self.hourly.aggregate_again(key, 0, 0)
        return True

    async def forget_rewritten(self, account_id: str, device_id: str, stream: str) -> None:
        where, params = _where(account_id, device_id, stream)
        await self.db.command(f"DELETE FROM rewritten_streams WHERE {where}", params)

    async def rewritten_streams(self) -> set[tuple[str, str, str]]:
        """(account, device, stream) of the streams where a timestamp may repeat."""
        rows = await self.db.query("SELECT account_id, device_id, stream FROM rewritten_streams")
        return {(a, d, s) for a, d, s in rows}

    # reads of one stream
    async def spans_all(self) -> dict[tuple[str, str, str], tuple[int, Point]]:
        """(account, device, stream) -> (earliest timestamp_ms, latest (timestamp_ms, value))
        of every stream.

        Not FINAL: of the rows at a stream's newest timestamp the one written last wins.
        """
        spans: dict[tuple[str, str, str], tuple[int, Point]] = {}
        for table in _TABLES.values():
            rows = await self.db.query(
                "SELECT account_id, device_id, stream, toUnixTimestamp64Milli(min(ts)),"
                " toUnixTimestamp64Milli(max(ts)), argMax(value, (ts, version)) FROM"
                f" {table} GROUP BY account_id, device_id, stream"
            )
            for account_id, device_id, stream, first, ts, value in rows:
                key = (account_id, device_id, stream)
                known = spans.get(key)
                if known is None:
                    spans[key] = (first, (ts, value))
                else:  # a stream that changed kind
                    latest = (ts, value) if ts > known[1][0] else known[1]
                    spans[key] = (min(first, known[0]), latest)
        return spans

    async def latest(
        self, account_id: str, device_id: str, stream: str, kind: str, final: bool = True
    ) -> Point | None:
        rows = await self.list(account_id, device_id, stream, kind, limit=1, final=final)
        return rows[0] if rows else None

    async def list(
        self,
        account_id: str,
        device_id: str,
        stream: str,
        kind: str,
        start_ms: int = 0,
        end_ms: int = 0,
        min: float | None = None,
        max: float | None = None,
        limit: int = 100,
        sort: str = "timestamp",
        dir: str = "desc",
        final: bool = True,
    ) -> Points:
        """Values with start_ms <= timestamp <= end_ms (0: unbounded), min <= value <= max.

        `final` False: the stream never repeats a timestamp, so rows need no deduplication.
        """
        table = _table(kind)
        if kind == TEXT and (min is not None or max is not None):
            raise ValueError("min and max apply to numeric streams only")
        if sort not in _SORTS or dir not in _DIRS:
            raise ValueError(f"sort {sort!r} / dir {dir!r} not supported")
        where, params = _where(account_id, device_id, stream, start_ms, end_ms, min, max)
        order = f"{_SORTS[sort]} {_DIRS[dir]}"
        if sort == "value":
            order += f", ts {_DIRS[dir]}"  # equal values in a stable order
        return await self.db.query(
            f"SELECT toUnixTimestamp64Milli(ts), value FROM {table}{_final(final)} WHERE {where}"
            f" ORDER BY {order} LIMIT {{limit:UInt64}}",
            {**params, "limit": limit},
        )

    async def sample(
        self,
        account_id: str,
        device_id: str,
        stream: str,
        type: str,
        interval: int,
        start_ms: int = 0,
        end_ms: int = 0,
        min: float | None = None,
        max: float | None = None,
        limit: int = 100,
        final: bool = True,
    ) -> Samples:
        """Newest first: every `interval`-th value (nth), or `type` per bucket of `interval` s.

        Buckets start at multiples of `interval` seconds since the epoch, computed on
        milliseconds (toStartOfInterval would clamp timestamps outside 1970-2106). Buckets of
        whole hours come from numeric_hourly unless `final` (a stream whose timestamps may
        repeat) or a min/max filter.
        """
        if interval < 1:
            raise ValueError("interval must be at least 1")
        if type != "nth" and type not in _AGGREGATES:
            raise ValueError(f"sampling type {type!r} not supported")
        where, params = _where(account_id, device_id, stream, start_ms, end_ms, min, max)
        # nth: only the newest limit * interval values can be picked, so number just those.
        params.update(interval=interval, limit=limit, scan=limit * interval)
        if type == "nth":
            return await self.db.query(_NTH.format(where=where, final=_final(final)), params)
        values = _BUCKETS.format(where=where, f=_AGGREGATES[type], final=_final(final))
        if final or min is not None or max is not None or interval % 3600:
            return await self.db.query(values, params)
        merge, partials = MERGES[type]
        hourly = (
            "SELECT hour - positiveModulo(hour, {interval:Int64} * 1000) AS bucket, "
            + merge
            + ", min(f), max(l) FROM ({rows}) GROUP BY bucket ORDER BY bucket DESC"
            " LIMIT {limit:UInt64}"
        )
        rows = await self.hourly.query(
            hourly, {"interval": interval, "limit": limit},
            (account_id, device_id, stream), start_ms, end_ms, partials,
        )  # fmt: skip
        return await self.db.query(values, params) if rows is None else rows

    async def stats(
        self,
        account_id: str,
        device_id: str,
        stream: str,
        start_ms: int = 0,
        end_ms: int = 0,
        min: float | None = None,
        max: float | None = None,
        final: bool = True,
    ) -> dict[str, Any]:
        """count, min, max, avg and population stddev of a numeric stream (None when empty).

        Whole hours come from numeric_hourly unless `final` or a min/max filter (see sample).
        """
        where, params = _where(account_id, device_id, stream, start_ms, end_ms, min, max)
        values = (
            "SELECT count(), min(value), max(value), avg(value), stddevPop(value)"
            f" FROM numeric_values{_final(final)} WHERE {where}"
        )
        rows = None
        if not final and min is None and max is None:
            hourly = (
                f"SELECT sum(c), min(lo), max(hi), sum(s) / sum(c), {STDDEV}, min(f), max(l)"
                " FROM ({rows}) HAVING sum(c) > 0"
            )
            rows = await self.hourly.query(
                hourly,
                {},
                (account_id, device_id, stream),
                start_ms,
                end_ms,
                "c s lo hi q".split(),
            )
            if rows == []:  # no values in the range
                rows = [(0, None, None, None, None)]
        if rows is None:
            rows = await self.db.query(values, params)
        ((count, lo, hi, avg, stddev),) = rows
        if not count:  # ClickHouse answers 0 and nan over no rows
            lo = hi = avg = stddev = None
        return {"count": count, "min": lo, "max": hi, "avg": avg, "stddev": stddev}

    # reads of several streams
    async def device_rows(
        self,
        account_id: str,
        device_id: str,
        streams: dict[str, str],
        start_ms: int = 0,
        end_ms: int = 0,
        limit: int = 100,
        conditions: Iterable[tuple[str, str, Value]] = (),
        final: bool = True,
    ) -> Rows:
        """Values of `streams` (name -> kind) grouped by timestamp, newest first.

        Only timestamps where every (stream, op, operand) condition holds for that stream's
        value are kept; `match` is equality. Condition streams must be among `streams`.
        """
        names = {kind: [n for n, k in streams.items() if k == kind] for kind in _TABLES}
        for kind in streams.values():
            _table(kind)
        if not streams:
            return []
        having, params = _having(streams, list(conditions))
        where, common = _where(account_id, device_id, None, start_ms, end_ms)
        params.update(common, limit=limit, numeric=names[NUMERIC], text=names[TEXT])
        rows = await self.db.query(
            "SELECT toUnixTimestamp64Milli(ts) AS t, groupArray(stream), groupArray(num),"
            f" groupArray(txt) FROM ({_device_union(names, where, not having, final)})"
            f" GROUP BY ts{' HAVING ' + having if having else ''}"
            " ORDER BY ts DESC LIMIT {limit:UInt64}",
            params,
        )
        return [(t, _values(streams, *columns)) for t, *columns in rows]


def _device_union(names: dict[str, list[str]], where: str, pruned: bool, final: bool) -> str:
    """(ts, stream, num, txt) rows of the named streams of both tables."""
    # Without conditions a timestamp in the newest `limit` is among the newest `limit` of
    # every stream that has a value there, so each stream's older rows need not be read.
    per_stream = " ORDER BY stream, ts DESC LIMIT {limit:UInt64} BY stream" if pruned else ""
    return " UNION ALL ".join(
        f"SELECT ts, stream, {num} AS num, {txt} AS txt FROM {_TABLES[kind]}{_final(final)}"
        f" WHERE {where} AND stream IN {{{kind_param}:Array(String)}}{per_stream}"
        for kind, num, txt, kind_param in (
            (NUMERIC, "value", "''", "numeric"),
            (TEXT, "toFloat64(0)", "value", "text"),
        )
        if names[kind]
    )


def _values(
    streams: dict[str, str], names: list[str], numbers: list[float], texts: list[str]
) -> dict[str, Value]:
    return {
        name: number if streams[name] == NUMERIC else text
        for name, number, text in zip(names, numbers, texts, strict=True)
    }


def _having(
    streams: dict[str, str], conditions: Sequence[tuple[str, str, Value]]
) -> tuple[str, dict[str, Any]]:
    """A HAVING clause: each condition holds for some row of the timestamp's group."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for i, (stream, op, operand) in enumerate(conditions):
        kind = streams.get(stream)
        if kind is None:
            raise ValueError(f"condition on stream {stream!r} that is not among the streams")
        ops, column, type_ = (
            (_NUMERIC_OPS, "num", "Float64") if kind == NUMERIC else (_TEXT_OPS, "txt", "String")
        )
        if op not in ops:
            raise ValueError(f"condition {op!r} not supported on {kind} stream {stream!r}")
        clauses.append(
            f"countIf(stream = {{c{i}s:String}} AND {column} {ops[op]} {{c{i}v:{type_}}}) > 0"
        )
        params[f"c{i}s"], params[f"c{i}v"] = stream, operand
    return " AND ".join(clauses), params
