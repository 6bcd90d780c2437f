"""Group commit: batching of concurrent writers, answers after their INSERT, failures, close."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.storage import group_commit
from services.storage.group_commit import GroupCommit


@dataclass
class Call:
    columns: list[list[Any]]
    outcome: asyncio.Future[None]  # the test decides when and how the INSERT returns


class FakeTable:
    """An async insert function that records each INSERT; `manual` ones wait for the test."""

    def __init__(self, manual: bool = False, seconds: float = 0.0) -> None:
        self.manual = manual
        self.seconds = seconds
        self.calls: asyncio.Queue[Call] = asyncio.Queue()
        self.written: list[list[list[Any]]] = []

    async def insert(self, columns: list[list[Any]]) -> None:
        call = Call(columns, asyncio.get_running_loop().create_future())
        if not self.manual:
            call.outcome.set_result(None)
        self.calls.put_nowait(call)
        await asyncio.sleep(self.seconds)
        await call.outcome
        self.written.append(columns)


def batch(*numbers: int) -> list[list[Any]]:
    return [list(numbers), [f"v{n}" for n in numbers]]


async def started(table: FakeTable, **options: Any) -> GroupCommit:
    commit = GroupCommit(table.insert, width=2, name="t", **options)
    await commit.start()
    return commit


async def test_concurrent_writers_share_few_inserts() -> None:
    table = FakeTable(seconds=0.002)
    commit = await started(table)
    async with asyncio.TaskGroup() as tg:
        for w in range(200):
            tg.create_task(commit.write(batch(*range(w * 5, w * 5 + 5))))
    await commit.close()
    assert commit.counters.batches == 200
    assert commit.counters.rows == 1000
    assert commit.counters.inserts == len(table.written) <= 5
    numbers = [n for columns in table.written for n in columns[0]]
    texts = [t for columns in table.written for t in columns[1]]
    assert sorted(numbers) == list(range(1000))
    assert texts == [f"v{n}" for n in numbers]  # columns stay aligned row by row


async def test_writer_answered_only_after_its_insert_returned() -> None:
    table = FakeTable(manual=True)
    commit = await started(table, delay=0.001)
    first = [asyncio.create_task(commit.write(batch(n))) for n in range(3)]
    insert1 = await table.calls.get()
    assert insert1.columns == batch(0, 1, 2)
    late = asyncio.create_task(commit.write(batch(9)))
    await asyncio.sleep(0.02)  # room for a wrong early answer or a second concurrent INSERT
    assert not any(task.done() for task in [*first, late])
    assert table.calls.empty()  # one INSERT at a time: the late batch waits for the next
    insert1.outcome.set_result(None)
    await asyncio.gather(*first)
    assert not late.done()
    insert2 = await table.calls.get()
    assert insert2.columns == batch(9)
    insert2.outcome.set_result(None)
    await late
    await commit.close()


async def test_failed_insert_fails_exactly_its_writers() -> None:
    table = FakeTable(manual=True)
    commit = await started(table, delay=0.001)
    first = [asyncio.create_task(commit.write(batch(n))) for n in (1, 2)]
    insert1 = await table.calls.get()
    late = asyncio.create_task(commit.write(batch(3)))
    insert1.outcome.set_exception(OSError("disk full"))
    outcomes = await asyncio.gather(*first, return_exceptions=True)
    assert [repr(o) for o in outcomes] == [repr(OSError("disk full"))] * 2
    (await table.calls.get()).outcome.set_result(None)
    await late
    await commit.close()
    assert (commit.counters.inserts, commit.counters.failed_inserts) == (2, 1)
    assert (commit.counters.batches, commit.counters.rows) == (1, 1)


async def test_close_flushes_pending_writes_without_waiting_the_delay() -> None:
    table = FakeTable()
    commit = await started(table, delay=60)
    writers = [asyncio.create_task(commit.write(batch(n))) for n in range(5)]
    await asyncio.sleep(0)  # the writers queue their batches
    async with asyncio.timeout(5):
        await commit.close()
        await asyncio.gather(*writers)
    assert table.written == [batch(0, 1, 2, 3, 4)]
    with pytest.raises(RuntimeError):
        await commit.write(batch(6))


async def test_enough_rows_flush_before_the_delay() -> None:
    table = FakeTable()
    commit = await started(table, delay=60, max_rows=10)
    async with asyncio.timeout(5):
        await asyncio.gather(*(commit.write(batch(*range(n, n + 4))) for n in (0, 4, 8)))
    assert commit.counters.inserts == 1
    await commit.close()


async def test_rejects_malformed_batches_and_skips_empty_ones() -> None:
    table = FakeTable()
    commit = await started(table)
    with pytest.raises(ValueError, match="unequal"):
        await commit.write([[1, 2], ["a"]])
    with pytest.raises(ValueError, match="expected 2 columns"):
        await commit.write([[1]])
    await commit.write([[], []])
    await commit.close()
    assert table.written == []


async def test_records_rows_per_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(group_commit.metrics, "get_meter", provider.get_meter)
    table = FakeTable()
    commit = await started(table)
    await asyncio.gather(commit.write(batch(1, 2)), commit.write(batch(3)))
    await commit.close()
    (resource,) = reader.get_metrics_data().resource_metrics
    (metric,) = resource.scope_metrics[0].metrics
    (point,) = metric.data.data_points
    assert metric.name == "m2x.storage.insert.rows"
    assert (point.count, point.sum, dict(point.attributes)) == (1, 3, {"table": "t"})
    provider.shutdown()
