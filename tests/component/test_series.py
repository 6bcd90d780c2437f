"""Stream values on a real chDB database: writes, overwrites, deletes, reads, sampling, stats.

chDB opens one data path per process, so the Series under test runs in a child process (the
`serve` function below) driven over JSON lines: `series.list(...)` here runs `Series.list` in
the child and returns its result as JSON (tuples come back as lists, child errors as
RemoteError with the child's message). Each test gets a fresh database in the child's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import random
import re
import shutil
import statistics
import sys
import traceback
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = [ROOT / "services" / "storage" / "migrations" / name
              for name in ("0002_values.sql", "0004_rewritten_streams.sql",
                           "0005_numeric_hourly.sql", "0006_low_cardinality_names.sql",
                           "0007_hourly_sums_of_squares.sql", "0009_fewer_merges.sql")]  # fmt: skip
LINE_LIMIT = 1 << 26
A, B, D = "acct-a", "acct-b", "dev-1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# the child process
def serve() -> None:
    """Child entry point: own the chDB path argv[1] and answer calls read from stdin."""
    asyncio.run(_serve(Path(sys.argv[1]), Path(sys.argv[2])))


async def _serve(path: Path, migrations: Path) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    opened: dict[str, Any] = {}
    running = set()
    while line := await reader.readline():  # each call its own task: writers run concurrently
        task = asyncio.create_task(_answer(json.loads(line), path, migrations, opened))
        running.add(task)
        task.add_done_callback(running.discard)


async def _answer(call: dict[str, Any], path: Path, migrations: Path, opened: dict) -> None:
    try:
        reply = {"id": call["id"], "result": _plain(await _run(call, path, migrations, opened))}
    except Exception as exc:
        reply = {"id": call["id"], "error": "".join(traceback.format_exception(exc))}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


async def _run(call: dict[str, Any], path: Path, migrations: Path, opened: dict) -> Any:
    from m2x.runtime.clickhouse import open_database
    from services.storage.series import Series

    database, method, args, kwargs = call["database"], call["method"], call["args"], call["kwargs"]
    if method == "open":
        db = await open_database(f"chdb://{path}", database, migrations)
        opened[database] = (db, Series(db, path.parent / f"{database}-wal", **kwargs))
        return await opened[database][1].start()
    db, series = opened[database]
    if method == "close":
        del opened[database]
        await series.close()
        return db.close()
    if method == "sql":  # a statement on the database, e.g. to make INSERTs fail
        await db.command(*args)
        return None
    if method.startswith("_"):
        raise ValueError(f"not a public method: {method}")
    attribute = getattr(series, method)
    if not callable(attribute):  # e.g. `latest` or `counters`: read the attribute
        return attribute
    result = attribute(*args, **kwargs)
    return await result if asyncio.iscoroutine(result) else result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        if value and all(isinstance(key, str) for key in value):  # else: tuple keys
            return {key: _plain(item) for key, item in value.items()}
        return [[_plain(key), _plain(item)] for key, item in value.items()]
    if isinstance(value, set | frozenset):
        return sorted(_plain(item) for item in value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# the test side
class RemoteError(Exception):
    """An exception raised in the child; its message is the child's traceback."""


class Child:
    """A child process owning a chDB path; `call` runs one Series method there."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._gone: ConnectionError | None = None  # set once the child exited
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, path: Path, migrations: Path) -> Child:
        stderr = path.with_name(f"{path.name}.stderr.log")
        with stderr.open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from tests.component.test_series import serve; serve()",
                str(path), str(migrations), cwd=ROOT, limit=LINE_LIMIT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=sink,
            )  # fmt: skip
        return cls(process, stderr)

    async def call(self, database: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._gone:
            raise self._gone
        done = asyncio.get_running_loop().create_future()
        self._waiting[id_ := next(self._ids)] = done
        request = {"id": id_, "database": database, "method": method, "args": args}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({**request, "kwargs": kwargs}).encode() + b"\n")
        reply = await done
        if "error" in reply:
            raise RemoteError(reply["error"])
        return reply["result"]

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            reply = json.loads(line)
            self._waiting.pop(reply["id"]).set_result(reply)
        code = await self.process.wait()
        self._gone = ConnectionError(f"child exited {code}: {self.stderr.read_text()[-3000:]}")
        for waiting in self._waiting.values():
            waiting.set_exception(self._gone)
        self._waiting.clear()

    async def open(self, database: str, **options: Any) -> Remote:
        await self.call(database, "open", **options)
        return Remote(self, database)

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
        await self._reader


class Remote:
    """`await remote.list(...)` runs `Series.list(...)` on the child's database."""

    def __init__(self, child: Child, database: str) -> None:
        self.child, self.database = child, database

    def __getattr__(self, method: str) -> Any:
        return lambda *args, **kwargs: self.child.call(self.database, method, *args, **kwargs)


@pytest.fixture(scope="module")
def migrations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("migrations")
    for migration in MIGRATIONS:
        shutil.copy(migration, folder)
    return folder


@contextlib.asynccontextmanager
async def running(path: Path, migrations: Path) -> AsyncIterator[Child]:
    child = await Child.start(path, migrations)
    try:
        yield child
    finally:
        await child.stop()


@pytest_asyncio.fixture(scope="module")
async def child(tmp_path_factory: pytest.TempPathFactory, migrations: Path) -> AsyncIterator[Child]:
    async with running(tmp_path_factory.mktemp("chdb") / "db", migrations) as process:
        yield process


@pytest_asyncio.fixture
async def series(child: Child, request: pytest.FixtureRequest) -> AsyncIterator[Remote]:
    """A Series over a database of its own, so no test sees another's rows."""
    name = re.sub(r"\W", "_", request.node.name)
    yield await child.open(name)
    await child.call(name, "close")


def ms(iso: str) -> int:
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(milliseconds=1)


T0 = ms("2015-04-21T03:36:42.347Z")


async def test_list_orders_filters_and_limits(series: Remote) -> None:
    stamps = [T0 + i * 86_400_000 * 7 for i in range(10)]  # ten weeks: three partitions
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 0.5]
    assert await series.write(A, D, [("t", stamps, values)]) == 10
    newest = [[t, v] for t, v in zip(stamps, values, strict=True)][::-1]
    assert await series.list(A, D, "t", "numeric") == newest
    assert await series.list(A, D, "t", "numeric", dir="asc", limit=3) == newest[::-1][:3]
    window = await series.list(A, D, "t", "numeric", start_ms=stamps[2], end_ms=stamps[5])
    assert window == newest[4:8]  # both ends inclusive
    assert await series.list(A, D, "t", "numeric", min=3, max=7) == [
        p for p in newest if 3 <= p[1] <= 7
    ]
    by_value = await series.list(A, D, "t", "numeric", sort="value", limit=4)
    assert [v for _, v in by_value] == [9.0, 8.0, 7.0, 6.0]
    by_value_asc = await series.list(A, D, "t", "numeric", sort="value", dir="asc", limit=2)
    assert by_value_asc == [[stamps[9], 0.5], [stamps[1], 1.0]]


async def test_same_timestamp_keeps_the_later_write(series: Remote) -> None:
    await series.write(A, D, [("t", [T0, T0 + 1], [1.0, 2.0])], [("x", [T0], ["old"])])
    await series.write(A, D, [("t", [T0], [10.0])], [("x", [T0, T0], ["newer", "newest"])])
    assert await series.list(A, D, "t", "numeric") == [[T0 + 1, 2.0], [T0, 10.0]]
    assert await series.list(A, D, "x", "alphanumeric") == [[T0, "newest"]]
    assert (await series.stats(A, D, "t"))["count"] == 2


async def test_writes_stored_together_act_as_separate_writes_in_order(series: Remote) -> None:
    """write_many (the writes of one WriteValuesBatch call, one WAL append for all): a later
    write at a timestamp replaces an earlier one of the same call, as between calls."""
    stored = await series.write_many([
        [A, D, [["t", [T0, T0 + 1], [1.0, 2.0]]], []],
        [A, D, [], []],
        [A, D, [["t", [T0], [10.0]]], [["x", [T0], ["text"]]]],
        [B, D, [["t", [T0], [5.0]]], []],
    ])  # fmt: skip
    assert stored == [2, 0, 2, 1]
    assert await series.list(A, D, "t", "numeric") == [[T0 + 1, 2.0], [T0, 10.0]]
    assert await series.list(A, D, "x", "alphanumeric") == [[T0, "text"]]
    assert await series.list(B, D, "t", "numeric") == [[T0, 5.0]]
    assert (await series.stats(A, D, "t"))["count"] == 2


async def test_deletes_remove_only_what_they_name(series: Remote) -> None:
    stamps = [T0 + i * 1000 for i in range(6)]
    await series.write(A, D, [("t", stamps, [0, 1, 2, 3, 4, 5]), ("u", stamps[:2], [7, 8])],
                       [("x", stamps[:1], ["text"])])  # fmt: skip
    await series.delete_range(A, D, "t", "numeric", stamps[1], stamps[3])  # inclusive
    assert await series.list(A, D, "t", "numeric") == [[stamps[5], 5.0], [stamps[4], 4.0],
                                                       [stamps[0], 0.0]]  # fmt: skip
    assert len(await series.list(A, D, "u", "numeric")) == 2
    await series.write(A, D, [("t", [stamps[2]], [22.0])])  # a deleted timestamp written again
    assert [v for _, v in await series.list(A, D, "t", "numeric")] == [5.0, 4.0, 22.0, 0.0]
    await series.delete_stream(A, D, "t")
    await series.delete_stream(A, D, "x")
    assert await series.list(A, D, "t", "numeric") == []
    assert await series.list(A, D, "x", "alphanumeric") == []
    assert await series.latest_point(A, D, "u", "numeric") == [stamps[1], 8.0]
    assert {tuple(k) for k, _ in await series.latest()} == {(D, "u")}
    await series.delete_device(A, D)
    assert await series.latest() == []
    assert await series.list(A, D, "u", "numeric") == []


async def test_newest_values_from_memory_are_what_clickhouse_holds(series: Remote) -> None:
    """A list of the newest values (no range, no filter) is answered from memory once the
    stream was read so; with writes in any order, rewritten timestamps and deletes racing the
    reads, it answers what ClickHouse does."""
    rng = random.Random(7)

    async def writes() -> None:
        for _ in range(80):
            stamps = rng.sample(range(T0, T0 + 400_000, 1000), 5)
            await series.write(A, D, [("t", stamps, [rng.uniform(-1, 1) for _ in stamps])])

    async def reads() -> None:
        for _ in range(80):
            await series.list(A, D, "t", "numeric", limit=rng.choice([1, 10, 100]))

    async def deletes() -> None:
        for _ in range(5):
            await asyncio.sleep(0.02)
            start = T0 + rng.randrange(400) * 1000
            await series.delete_range(A, D, "t", "numeric", start, start + 30_000)

    await asyncio.gather(writes(), reads(), deletes())
    assert (await series.counters())["recent_reads"] > 0
    await series.list(A, D, "t", "numeric")  # fills the tail again if a delete came last
    for limit in (1, 10, 100):
        before = (await series.counters())["recent_reads"]
        from_memory = await series.list(A, D, "t", "numeric", limit=limit)
        assert (await series.counters())["recent_reads"] == before + 1
        from_clickhouse = await series.list(A, D, "t", "numeric", limit=1000)
        assert from_memory == from_clickhouse[:limit]


async def test_a_read_racing_a_delete_keeps_nothing_deleted(series: Remote) -> None:
    stamps = [T0 + i * 1000 for i in range(300)]
    await series.write(A, D, [("t", stamps, [float(i) for i in range(300)])])
    for end in range(299, 200, -20):  # each time the newest 20 values go
        await asyncio.gather(
            series.delete_range(A, D, "t", "numeric", stamps[end - 19], stamps[end]),
            series.list(A, D, "t", "numeric"),  # may read ClickHouse before the delete
        )  # fmt: skip
        newest = await series.list(A, D, "t", "numeric", limit=1)
        assert newest == [[stamps[end - 20], float(end - 20)]]


def python_buckets(points: list[tuple[int, float]], seconds: int) -> dict[int, list[float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, v in points:
        buckets[t - t % (seconds * 1000)].append(v)
    return buckets


PYTHON_AGGREGATES = {
    "min": min, "max": max, "count": len, "avg": statistics.fmean, "sum": math.fsum,
    "stddev": statistics.pstdev,
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(PYTHON_AGGREGATES))
@pytest.mark.parametrize("interval", [60, 7])
async def test_sampling_matches_python(series: Remote, kind: str, interval: int) -> None:
    rng = random.Random(f"{kind}{interval}")
    stamps = sorted(rng.sample(range(T0, T0 + 900_000), 400))
    points = [(t, rng.uniform(-100, 100)) for t in stamps]
    await series.write(A, D, [("t", stamps, [v for _, v in points])])
    buckets = python_buckets(points, interval)
    expected = [(b, float(PYTHON_AGGREGATES[kind](buckets[b]))) for b in sorted(buckets)[::-1]]
    got = await series.sample(A, D, "t", kind, interval, limit=8)
    assert [b for b, _ in got] == [b for b, _ in expected[:8]]  # newest bucket first
    assert [v for _, v in got] == pytest.approx([v for _, v in expected[:8]], rel=1e-9)


async def test_buckets_align_to_multiples_of_the_interval(series: Remote) -> None:
    before_1970 = ms("1965-01-01T00:00:03.500Z")
    stamps = [before_1970, T0, T0 + 2_000, T0 + 2_653, T0 + 8_000]
    await series.write(A, D, [("t", stamps, [1.0, 3.0, 4.0, 100.0, 5.0])])
    got = await series.sample(A, D, "t", "sum", 10, min=0, max=50)
    assert got == [
        [ms("2015-04-21T03:36:50.000Z"), 5.0],
        [ms("2015-04-21T03:36:40.000Z"), 7.0],  # 03:36:42.347 -> 03:36:40.000
        [ms("1965-01-01T00:00:00.000Z"), 1.0],
    ]
    assert await series.sample(A, D, "t", "count", 3600, start_ms=T0, end_ms=T0 + 2_000) == [
        [ms("2015-04-21T03:00:00.000Z"), 2.0]
    ]


async def test_nth_keeps_every_interval_th_value_newest_first(series: Remote) -> None:
    stamps = [T0 + i * 1000 for i in range(10)]
    await series.write(A, D, [("t", stamps, [float(i) for i in range(10)])])
    assert await series.sample(A, D, "t", "nth", 3) == [
        [stamps[7], 7.0], [stamps[4], 4.0], [stamps[1], 1.0]
    ]  # fmt: skip
    assert await series.sample(A, D, "t", "nth", 2, limit=2) == [[stamps[8], 8.0],
                                                                 [stamps[6], 6.0]]  # fmt: skip


async def test_stats_use_the_population_stddev(series: Remote) -> None:
    values = [120.0, 120.0, 100.0, 100.0, 50.0, 50.0, 100.0, 120.0]
    stamps = [T0 + i * 1000 for i in range(8)]
    await series.write(A, D, [("t", stamps, values)])
    stats = await series.stats(A, D, "t")
    assert stats == {"count": 8, "min": 50.0, "max": 120.0, "avg": 95.0,
                     "stddev": pytest.approx(27.386128, abs=1e-6)}  # fmt: skip
    assert (await series.stats(A, D, "t", min=100, max=110, end_ms=stamps[6]))["count"] == 3
    assert await series.stats(A, D, "t", start_ms=stamps[7] + 1) == {
        "count": 0, "min": None, "max": None, "avg": None, "stddev": None
    }  # fmt: skip


async def test_device_rows_group_by_timestamp_and_filter(series: Remote) -> None:
    t1, t2, t3 = T0, T0 + 1000, T0 + 2000
    await series.write(
        A, D, [("temp", [t1, t2, t3], [20.0, 25.0, 31.0]), ("hum", [t1, t3], [50.0, 40.0])],
        [("state", [t2, t3], ["on", "off"])],
    )  # fmt: skip
    kinds = {"temp": "numeric", "hum": "numeric", "state": "alphanumeric"}
    rows = await series.device_rows(A, D, kinds)
    assert rows == [[t3, {"temp": 31.0, "hum": 40.0, "state": "off"}],
                    [t2, {"temp": 25.0, "state": "on"}], [t1, {"temp": 20.0, "hum": 50.0}]]  # fmt: skip
    assert [t for t, _ in await series.device_rows(A, D, kinds, limit=2)] == [t3, t2]
    assert [t for t, _ in await series.device_rows(A, D, kinds, start_ms=t2, end_ms=t2)] == [t2]
    warm = [["temp", "gt", 20], ["temp", "lte", 31]]
    assert [t for t, _ in await series.device_rows(A, D, kinds, conditions=warm)] == [t3, t2]
    both = [*warm, ["state", "match", "on"]]
    assert [t for t, _ in await series.device_rows(A, D, kinds, conditions=both)] == [t2]
    with_hum = [["hum", "eq", 40]]
    assert await series.device_rows(A, D, {"hum": "numeric"}, conditions=with_hum) == [
        [t3, {"hum": 40.0}]
    ]


async def test_text_values_up_to_5000_characters(series: Remote) -> None:
    texts = ["é" * 5000, "x" * 4999 + "\n", ""]
    await series.write(A, D, [], [("x", [T0, T0 + 1, T0 + 2], texts)])
    assert await series.list(A, D, "x", "alphanumeric", dir="asc") == [
        [T0 + i, text] for i, text in enumerate(texts)
    ]


async def test_accounts_never_see_each_other(series: Remote) -> None:
    await series.write(A, D, [("t", [T0], [1.0])], [("x", [T0], ["a"])])
    await series.write(B, D, [("t", [T0, T0 + 1], [2.0, 3.0])], [("x", [T0], ["b"])])
    assert await series.list(A, D, "t", "numeric") == [[T0, 1.0]]
    assert await series.list(A, D, "x", "alphanumeric") == [[T0, "a"]]
    assert (await series.stats(A, D, "t"))["count"] == 1
    assert await series.sample(A, D, "t", "count", 60) == [[T0 - T0 % 60_000, 1.0]]
    kinds = {"t": "numeric", "x": "alphanumeric"}
    assert await series.device_rows(A, D, kinds) == [[T0, {"t": 1.0, "x": "a"}]]
    await series.delete_device(A, D)
    assert await series.list(B, D, "t", "numeric") == [[T0 + 1, 3.0], [T0, 2.0]]


async def test_latest_points_follow_writes_and_survive_restart(
    tmp_path: Path, migrations: Path
) -> None:
    expected = {(D, "t"): [T0 + 9, 9.0], ("dev-2", "x"): [T0, "hello"], (D, "u"): [T0 - 1, -1.0]}
    async with running(tmp_path / "db", migrations) as first:
        remote = await first.open("storage")
        await remote.write(A, D, [("t", [T0 + 5, T0, T0 + 9], [5.0, 0.0, 9.0])])
        await remote.write(A, "dev-2", [], [("x", [T0], ["hello"])])
        await remote.write(B, D, [("u", [T0 - 1], [-1.0])])
        assert {tuple(k): v for k, v in await remote.latest()} == expected
        assert await remote.latest_point(A, D, "t", "numeric") == [T0 + 9, 9.0]
        assert await remote.latest_point(A, D, "missing", "numeric") is None
        await first.call("storage", "close")
    async with running(tmp_path / "db", migrations) as second:
        remote = await second.open("storage")  # loaded from ClickHouse
        assert {tuple(k): v for k, v in await remote.latest()} == expected


async def test_writes_are_answered_before_their_insert_and_read_after_it(series: Remote) -> None:
    writes = [series.write(A, D, [(f"s{w % 10}", [T0 + w * 10 + i for i in range(5)], [1.0] * 5)])
              for w in range(200)]  # fmt: skip
    assert await asyncio.gather(*writes) == [5] * 200
    assert (await series.counters())["inserts"] == 0  # still buffered (interval 1 s)
    assert (await series.stats(A, D, "s3"))["count"] == 100  # the read flushed them
    counters = await series.counters()
    assert (counters["rows"], counters["inserts"]) == (1000, 1), counters


async def test_buffer_is_inserted_after_the_interval(child: Child) -> None:
    remote = await child.open("interval", flush_interval=0.05)
    await remote.write(A, D, [("t", [T0], [1.0])])
    for _ in range(100):
        if (await remote.counters())["inserts"]:
            break
        await asyncio.sleep(0.02)
    assert (await remote.counters())["rows"] == 1
    await child.call("interval", "close")


async def test_full_buffer_holds_writers_back_until_inserts_catch_up(child: Child) -> None:
    remote = await child.open("full", max_buffered_rows=300, flush_rows=250, full_wait=2.0)
    # More than fits at once: writers wait for INSERTs instead of failing or piling up.
    writes = [remote.write(A, D, [("t", [T0 + w * 100 + i for i in range(100)], [1.0] * 100)])
              for w in range(10)]  # fmt: skip
    assert await asyncio.gather(*writes) == [100] * 10
    counters = await remote.counters()
    assert counters["inserts"] >= 3, counters  # INSERTs of about flush_rows rows
    # While INSERTs fail, a write that finds no room within full_wait gets Unavailable ...
    await remote.flush()
    await child.call("full", "sql", "RENAME TABLE numeric_values TO numeric_values_away")
    for w in range(3):
        await remote.write(A, D, [("t", [T0 + 10_000 + w * 100 + i for i in range(100)], [2.0] * 100)])  # fmt: skip
    with pytest.raises(RemoteError, match="Unavailable"):
        await remote.write(A, D, [("t", [T0 + 20_000], [3.0])])
    # ... and once they succeed again, every acknowledged value is stored.
    await child.call("full", "sql", "RENAME TABLE numeric_values_away TO numeric_values")
    assert await remote.write(A, D, [("t", [T0 + 30_000], [4.0])]) == 1
    assert (await remote.stats(A, D, "t"))["count"] == 1000 + 300 + 1
    await child.call("full", "close")


async def test_hourly_aggregates_are_repaired_after_a_crash_inside_an_insert(
    tmp_path: Path, migrations: Path
) -> None:
    path, wal = tmp_path / "db", tmp_path / "storage-wal"
    stamps = [T0 + i * 60_000 for i in range(300)]  # 5 hours and a bit
    async with running(path, migrations) as first:
        remote = await first.open("storage", flush_interval=60)
        await remote.write(A, D, [("t", stamps, [float(i) for i in range(300)])])
        await remote.write(A, D, [("u", stamps, [1.0] * 300)])
        segments = {f.name: f.read_bytes() for f in wal.iterdir()}
        await remote.flush()  # inserted, and the WAL segments retired
        # What dying inside the INSERT may leave: t's values without their hourly rows, u's
        # hourly rows without its values; and the WAL segments still there.
        await first.call("storage", "sql", "DELETE FROM numeric_hourly WHERE stream = 't'")
        await first.call("storage", "sql", "DELETE FROM numeric_values WHERE stream = 'u'")
        first.process.kill()
    for name, data in segments.items():
        (wal / name).write_bytes(data)
    async with running(path, migrations) as second:
        remote = await second.open("storage")
        for stream, values in (("t", [float(i) for i in range(300)]), ("u", [1.0] * 300)):
            assert await remote.stats(A, D, stream) == {
                "count": 300, "min": min(values), "max": max(values),
                "avg": pytest.approx(statistics.fmean(values)),
                "stddev": pytest.approx(statistics.pstdev(values)),
            }  # fmt: skip
            hourly = await remote.sample(A, D, stream, "count", 3600)
            assert sum(count for _, count in hourly) == 300


async def test_rewritten_streams_are_remembered(tmp_path: Path, migrations: Path) -> None:
    async with running(tmp_path / "db", migrations) as first:
        remote = await first.open("storage")
        await remote.write(A, D, [("append", [T0, T0 + 1], [1.0, 2.0])])
        await remote.write(A, D, [("append", [T0 + 2], [3.0]), ("again", [T0, T0], [1.0, 2.0])])
        await remote.write(A, D, [("back", [T0 + 5], [1.0])])
        await remote.write(A, D, [("back", [T0 + 5], [2.0])])
        assert sorted(map(tuple, await remote.rewritten())) == [(A, D, "again"), (A, D, "back")]
        assert await remote.list(A, D, "back", "numeric") == [[T0 + 5, 2.0]]
        await first.call("storage", "close")
    async with running(tmp_path / "db", migrations) as second:
        remote = await second.open("storage")
        assert sorted(map(tuple, await remote.rewritten())) == [(A, D, "again"), (A, D, "back")]
        await remote.delete_stream(A, D, "back")
        assert sorted(map(tuple, await remote.rewritten())) == [(A, D, "again")]


async def test_rejects_what_it_cannot_answer(series: Remote) -> None:
    calls = [
        series.list(A, D, "t", "boolean"),
        series.list(A, D, "t", "numeric", sort="name"),
        series.list(A, D, "x", "alphanumeric", min=1),
        series.sample(A, D, "t", "median", 10),
        series.sample(A, D, "t", "avg", 0),
        series.write(A, D, [("t", [T0, T0 + 1], [1.0])]),
        series.device_rows(A, D, {"t": "numeric"}, conditions=[["u", "gt", 1]]),
        series.device_rows(A, D, {"x": "alphanumeric"}, conditions=[["x", "gt", "a"]]),
    ]
    for call in calls:
        with pytest.raises(RemoteError, match="ValueError"):
            await call


async def test_acknowledged_writes_survive_kill(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "db"
    acked: list[tuple[str, int]] = []
    enough = asyncio.Event()

    async def writer(remote: Remote, stream: str) -> None:
        for n in itertools.count():
            stamps = [T0 + n * 100 + i for i in range(20)]
            try:
                await remote.write(A, D, [(stream, stamps, [float(n)] * 20)])
            except ConnectionError:  # killed
                return
            acked.extend((stream, t) for t in stamps)
            if len(acked) >= 3000:
                enough.set()

    async with running(path, migrations) as first:
        remote = await first.open("storage")
        writers = [asyncio.create_task(writer(remote, f"w{k}")) for k in range(16)]
        await enough.wait()
        first.process.kill()  # SIGKILL with writes in flight
        await asyncio.gather(*writers)
    stored = set()
    async with running(path, migrations) as second:
        remote = await second.open("storage")
        for k in range(16):
            rows = await remote.list(A, D, f"w{k}", "numeric", limit=1_000_000)
            stored.update((f"w{k}", t) for t, _ in rows)
    assert len(acked) >= 3000
    assert set(acked) <= stored
