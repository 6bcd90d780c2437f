"""Reads that skip FINAL and use hourly aggregates answer what the values table answers.

Streams that never repeat a timestamp are read without FINAL, and their stats and
whole-hour sampling come from numeric_hourly (migration 0005); rewritten streams are read
from the values table with FINAL. Both must give the same answers, also over ranges that cut
hours, after deletes, and when writes race deletes. Same child-process harness as
test_series.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import statistics
from pathlib import Path

import pytest

from tests.component import test_series as harness
from tests.component.test_series import (
    MIGRATIONS,
    PYTHON_AGGREGATES,
    A,
    D,
    Remote,
    RemoteError,
    python_buckets,
    running,
)
from tests.support.waiting import eventually

# the harness's fixtures: one child process per module, a database per test
child, migrations, series = harness.child, harness.migrations, harness.series

HOUR = 3_600_000
T0 = 1_429_587_402_347  # 2015-04-21T03:36:42.347Z: not on an hour
KINDS = sorted(PYTHON_AGGREGATES)


def points_over(hours: int, count: int, seed: str) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    stamps = sorted(rng.sample(range(T0, T0 + hours * HOUR), count))
    return [(t, round(rng.uniform(-100, 100), 3)) for t in stamps]


def python_stats(points: list[tuple[int, float]]) -> dict[str, float | int | None]:
    values = [v for _, v in points]
    if not values:
        return {"count": 0, "min": None, "max": None, "avg": None, "stddev": None}
    return {"count": len(values), "min": min(values), "max": max(values),
            "avg": statistics.fmean(values), "stddev": statistics.pstdev(values)}  # fmt: skip


def python_sampling(points: list[tuple[int, float]], kind: str, seconds: int,
                    limit: int = 1000) -> list[tuple[int, float]]:  # fmt: skip
    buckets = python_buckets(points, seconds)
    newest = sorted(buckets)[::-1][:limit]
    return [(b, float(PYTHON_AGGREGATES[kind](buckets[b]))) for b in newest]


def same_stats(got: dict[str, float | int | None], expected: dict[str, float | int | None]) -> bool:
    return got.keys() == expected.keys() and all(
        got[k] == expected[k]
        or (got[k] is not None and expected[k] is not None
            and math.isclose(got[k], expected[k], rel_tol=1e-9, abs_tol=1e-9))  # type: ignore[arg-type]
        for k in got
    )  # fmt: skip


def same_samples(got: list[list[float]], expected: list[tuple[int, float]]) -> bool:
    return [b for b, _ in got] == [b for b, _ in expected] and all(
        math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-9)
        for (_, g), (_, e) in zip(got, expected, strict=True)
    )


def window(points: list[tuple[int, float]], start: int, end: int) -> list[tuple[int, float]]:
    return [(t, v) for t, v in points if (not start or t >= start) and (not end or t <= end)]


# ranges: unbounded, hour-aligned, cutting hours at either end or both, within one hour,
# cutting hours before and after every value, and minutes after the oldest values
RANGES = [(0, 0), (T0 - T0 % HOUR + 2 * HOUR, T0 - T0 % HOUR + 20 * HOUR - 1),
          (T0 + 5 * HOUR + 17, 0), (0, T0 + 7 * HOUR + 1234), (T0 + 2 * HOUR + 59_000,
          T0 + 11 * HOUR - 59_000), (T0 + 3 * HOUR + 10, T0 + 3 * HOUR + 600_000),
          (T0 - 1000, T0 + 45 * HOUR + 1234), (T0 + 600_000, T0 + 45 * HOUR)]  # fmt: skip


async def assert_agrees(series: Remote, stream: str, points: list[tuple[int, float]]) -> None:
    """stats and sampling of `stream` equal Python's over `points`, on every range and on
    the one from its oldest value to its newest (as clients ask for "all of it")."""
    spans = [(min(points)[0], max(points)[0])] if points else []
    ranges = RANGES + spans
    asked = [(r, seconds, kind) for r in ranges for seconds in (3600, 7200, 86400, 60)
             for kind in KINDS]  # fmt: skip
    # asked all at once: the reads run side by side, as a server's requests do
    stats, samples = await asyncio.gather(
        asyncio.gather(*(series.stats(A, D, stream, start_ms=s, end_ms=e) for s, e in ranges)),
        asyncio.gather(*(
            series.sample(A, D, stream, kind, seconds, start_ms=s, end_ms=e, limit=1000)
            for (s, e), seconds, kind in asked
        )),
    )  # fmt: skip
    for (start, end), got in zip(ranges, stats, strict=True):
        assert same_stats(got, python_stats(window(points, start, end))), (start, end, got)
    for ((start, end), seconds, kind), got in zip(asked, samples, strict=True):
        expected = python_sampling(window(points, start, end), kind, seconds)
        assert same_samples(got, expected), (start, end, seconds, kind)
    got = await series.sample(A, D, stream, "avg", 3600, limit=3)
    assert same_samples(got, python_sampling(points, "avg", 3600, limit=3))


async def test_append_only_stream_answers_like_python(series: Remote) -> None:
    points = points_over(30, 3000, "append")
    for chunk in range(0, 3000, 700):  # several INSERTs: several rows per hour until merged
        part = points[chunk : chunk + 700]
        await series.write(A, D, [("a", [t for t, _ in part], [v for _, v in part])])
        await series.flush()
    assert await series.rewritten() == []
    await assert_agrees(series, "a", points)


async def test_rewritten_and_append_only_streams_answer_alike(series: Remote) -> None:
    points = points_over(20, 1500, "same")
    stamps, values = [t for t, _ in points], [v for _, v in points]
    await series.write(A, D, [("a", stamps, values)])
    # "r": the same final rows, reached by writing other values first at the same timestamps
    await series.write(A, D, [("r", stamps[::2], [v + 1000 for v in values[::2]])])
    await series.flush()
    await series.write(A, D, [("r", stamps, values)])
    assert await series.rewritten() == [[A, D, "r"]]
    for start, end in RANGES:
        stats = [await series.stats(A, D, s, start_ms=start, end_ms=end) for s in "ar"]
        assert same_stats(stats[0], stats[1])
        assert same_stats(stats[0], python_stats(window(points, start, end)))
        for kind in [*KINDS, "nth"]:
            for seconds in (3600, 7200, 60):
                got = [await series.sample(A, D, s, kind, seconds, start_ms=start, end_ms=end,
                                           limit=50) for s in "ar"]  # fmt: skip
                assert same_samples(got[0], [(b, v) for b, v in got[1]])
        for options in ({}, {"dir": "asc", "limit": 7}, {"sort": "value", "limit": 20},
                        {"min": -10, "max": 10}):  # fmt: skip
            listed = [await series.list(A, D, s, "numeric", start_ms=start, end_ms=end,
                                        **options) for s in "ar"]  # fmt: skip
            assert listed[0] == listed[1]
    assert await series.latest_point(A, D, "a", "numeric") == await series.latest_point(
        A, D, "r", "numeric"
    )
    filtered = [await series.stats(A, D, s, min=-50, max=50) for s in "ar"]
    assert same_stats(filtered[0], filtered[1])


async def test_deletes_fix_the_hourly_aggregates(series: Remote) -> None:
    points = points_over(30, 2000, "deletes")
    await series.write(A, D, [("a", [t for t, _ in points], [v for _, v in points])])
    cuts = [
        (T0 + 2 * HOUR + 1000, T0 + 4 * HOUR + 5000),  # cuts three hours
        (T0 + 9 * HOUR, T0 + 9 * HOUR + 10),  # within one hour
        (T0 - T0 % HOUR + 12 * HOUR, T0 - T0 % HOUR + 14 * HOUR - 1),  # two whole hours
        (T0 - 1000, T0 + HOUR),  # the oldest values
    ]
    for start, end in cuts:
        await series.delete_range(A, D, "a", "numeric", start, end)
        points = [(t, v) for t, v in points if not start <= t <= end]
        await assert_agrees(series, "a", points)
    # values written again into deleted hours, after the newest: still append-only
    later = [(T0 + 31 * HOUR + i * 1000, float(i)) for i in range(5)]
    await series.write(A, D, [("a", [t for t, _ in later], [v for _, v in later])])
    assert await series.rewritten() == []
    await assert_agrees(series, "a", points + later)
    await series.delete_stream(A, D, "a")
    assert (await series.stats(A, D, "a"))["count"] == 0
    again = points_over(3, 50, "again")
    await series.write(A, D, [("a", [t for t, _ in again], [v for _, v in again])])
    await assert_agrees(series, "a", again)
    await series.delete_device(A, D)
    assert (await series.stats(A, D, "a"))["count"] == 0
    assert await series.sample(A, D, "a", "count", 3600) == []


async def test_writes_racing_deletes_leave_consistent_answers(series: Remote) -> None:
    """Appends into the hour a delete is fixing: whatever interleaving, answers stay right."""
    newest = T0
    done = asyncio.Event()

    async def appends() -> None:
        nonlocal newest
        while not done.is_set():
            stamps = [newest + 1000 + i * 1000 for i in range(20)]
            newest = stamps[-1]
            await series.write(A, D, [("a", stamps, [2.0] * 20)])
            await series.flush()

    async def deletes() -> None:
        for _ in range(30):
            await asyncio.sleep(0.005)
            await series.delete_range(A, D, "a", "numeric", newest - 30_000, newest - 25_000)
        done.set()

    await asyncio.gather(appends(), deletes())
    stored = [(t, v) for t, v in await series.list(A, D, "a", "numeric", limit=1_000_000)]
    assert same_stats(await series.stats(A, D, "a"), python_stats(stored))
    for kind in KINDS:
        got = await series.sample(A, D, "a", kind, 3600, limit=1000)
        assert same_samples(got, python_sampling(stored, kind, 3600))


@pytest.mark.parametrize("cut", ["0005", "0007"])  # before numeric_hourly; its view's days
async def test_values_stored_before_a_migration_are_aggregated(tmp_path: Path, cut: str) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    older = [m for m in MIGRATIONS if m.name < cut]
    for folder, names in ((before, older), (after, MIGRATIONS)):
        folder.mkdir()
        for migration in names:
            shutil.copy(migration, folder)
    points = points_over(10, 500, "backfill")
    async with running(tmp_path / "db", before) as first:
        remote = await first.open("storage")
        await remote.write(A, D, [("a", [t for t, _ in points], [v for _, v in points])])
        await first.call("storage", "close")
    async with running(tmp_path / "db", after) as second:
        remote = await second.open("storage")
        await assert_agrees(remote, "a", points)


async def test_a_read_settles_a_big_rewritten_stream(tmp_path: Path, migrations: Path) -> None:
    points = points_over(40, 12_000, "settle")
    later, earlier = points[6000:], points[:6000]  # the newer half arrives first
    replaced = {t: v + 500 for t, v in points[100:600]}  # then some timestamps again
    final = [(t, replaced.get(t, v)) for t, v in points]
    async with running(tmp_path / "db", migrations) as first:
        remote = await first.open("storage")
        for part in (later, earlier, list(replaced.items())):
            await remote.write(A, D, [("a", [t for t, _ in part], [v for _, v in part])])
            await remote.flush()
        await remote.write(A, D, [("small", [T0 + 1], [1.0])])
        await remote.write(A, D, [("small", [T0], [2.0])])
        assert await remote.rewritten() == [[A, D, "a"], [A, D, "small"]]
        assert same_stats(await remote.stats(A, D, "a"), python_stats(final))
        assert same_stats(await remote.stats(A, D, "small"), python_stats([(0, 1.0), (0, 2.0)]))
        assert await remote.rewritten() == [[A, D, "small"]]  # too small to be worth it
        await assert_agrees(remote, "a", final)
        listed = await remote.list(A, D, "a", "numeric", limit=100_000, dir="asc")
        assert [tuple(p) for p in listed] == final
        await first.call("storage", "close")
    async with running(tmp_path / "db", migrations) as second:
        remote = await second.open("storage")
        assert await remote.rewritten() == [[A, D, "small"]]
        await assert_agrees(remote, "a", final)


async def test_hourly_aggregates_that_fail_to_insert_are_retried_alone(series: Remote) -> None:
    """Values are stored once even when their hourly aggregates could not be inserted at
    first, and the aggregates arrive once the table takes them again."""
    points = points_over(3, 300, "retry")
    await series.sql("RENAME TABLE numeric_hourly TO numeric_hourly_away")
    await series.write(A, D, [("a", [t for t, _ in points], [v for _, v in points])])
    flushing = asyncio.create_task(series.flush())
    await asyncio.sleep(1.0)
    assert not flushing.done()  # the values are in, their hours are not
    await series.sql("RENAME TABLE numeric_hourly_away TO numeric_hourly")
    await asyncio.wait_for(flushing, 30)
    listed = await series.list(A, D, "a", "numeric", limit=100_000, dir="asc")
    assert [tuple(p) for p in listed] == points
    assert await series.rewritten() == []
    await assert_agrees(series, "a", points)


async def refuse_inserts_after_storing(series: Remote, table: str) -> None:
    """Make INSERTs into `table` fail after storing their rows, as ClickHouse can (here a
    materialized view that throws; over a network, an answer lost on the way back). The
    refusal is in a Memory table: it ends with the process."""
    await series.sql("CREATE TABLE refusing (on UInt8) ENGINE = Memory")
    await series.sql("INSERT INTO refusing VALUES (1)")
    await series.sql(
        "CREATE MATERIALIZED VIEW refuse ENGINE = Memory AS SELECT"
        f" throwIf((SELECT count() FROM refusing) > 0, 'refused') AS x FROM {table}"
    )


async def flushed(series: Remote) -> bool:
    """Whether a flush of everything written went through (a failed INSERT fails it)."""
    try:
        await series.flush()
    except RemoteError:
        return False
    return True


@pytest.mark.parametrize(
    ("table", "counter"),
    [("numeric_values", "failed_flushes"), ("numeric_hourly", "failed_hourly_inserts")],
)
async def test_inserts_that_failed_after_storing_their_rows_store_them_once(
    series: Remote, table: str, counter: str
) -> None:
    points = points_over(3, 300, "doubtful")
    await refuse_inserts_after_storing(series, table)
    await series.write(A, D, [("a", [t for t, _ in points], [v for _, v in points])])
    # the flusher inserts on its own, fails, and tries again
    await eventually(series.counters, lambda counters: counters[counter] >= 2)
    await series.sql("TRUNCATE TABLE refusing")
    await eventually(lambda: flushed(series), bool, within=30)
    listed = await series.list(A, D, "a", "numeric", limit=100_000, dir="asc")
    assert [tuple(p) for p in listed] == points
    assert await series.rewritten() == []
    await assert_agrees(series, "a", points)


async def test_a_replay_stores_once_what_a_failed_insert_stored(
    tmp_path: Path, migrations: Path
) -> None:
    points = points_over(3, 300, "replayed")
    async with running(tmp_path / "db", migrations) as first:
        remote = await first.open("storage")
        await refuse_inserts_after_storing(remote, "numeric_values")
        await remote.write(A, D, [("a", [t for t, _ in points], [v for _, v in points])])
        await eventually(remote.counters, lambda counters: counters["failed_flushes"] >= 1)
        first.process.kill()  # its rows stored, its WAL segments not retired
    async with running(tmp_path / "db", migrations) as second:
        remote = await second.open("storage")
        listed = await remote.list(A, D, "a", "numeric", limit=100_000, dir="asc")
        assert [tuple(p) for p in listed] == points
        await assert_agrees(remote, "a", points)
