"""ValueWriter: writes of one moment share a WriteValuesBatch call, each keeps its own answer."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from adapters.api import value_writer
from adapters.api.value_writer import ValueWriter
from m2x.runtime.errors import DomainError, NotFound, Unavailable, ValidationFailed
from m2x.runtime.grpc_status import to_status
from m2x.storage.v1 import storage_pb2 as pb

CALLER = pb.Caller(account_id="a" * 32, key_kind="master")


def device(n: int) -> pb.DeviceRef:
    return pb.DeviceRef(id=f"{n:032d}")


def numbers(**streams: list[float]) -> pb.ValueColumns:
    """Numeric values of the named streams, at timestamps 1000, 1001, ..."""
    values = [v for column in streams.values() for v in column]
    stamps = [1_000 + i for column in streams.values() for i in range(len(column))]
    return pb.ValueColumns(
        streams=list(streams), counts=[len(c) for c in streams.values()],
        texts=[False] * len(streams), timestamps_ms=struct.pack(f"<{len(stamps)}q", *stamps),
        numbers=struct.pack(f"<{len(values)}d", *values),
    )  # fmt: skip


class Storage:
    """Answers each write of a batch by its device: listed errors, else the values it holds.

    While `hold` is clear, calls wait for it (a call under way); `calls` keeps every request.
    """

    def __init__(self, errors: dict[str, DomainError] | None = None) -> None:
        self.errors = errors or {}
        self.calls: list[pb.WriteValuesBatchRequest] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail: BaseException | None = None

    async def WriteValuesBatch(self, request: pb.WriteValuesBatchRequest) -> Any:
        copy = pb.WriteValuesBatchRequest()
        copy.CopyFrom(request)
        self.calls.append(copy)
        await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        results = []
        for write in request.writes:
            error = self.errors.get(write.device.id)
            if error is not None:
                results.append(pb.WriteValuesResult(error=to_status(error)))
            else:
                stored = sum(write.values.counts)
                results.append(pb.WriteValuesResult(stored=stored + write.HasField("location")))
        return pb.WriteValuesBatchResponse(results=results)


async def test_writes_of_one_moment_share_a_call_and_keep_their_own_answers() -> None:
    storage = Storage(errors={
        device(1).id: NotFound("Device", device(1).id),
        device(2).id: ValidationFailed({"s": ["Stream not found"]}),
    })  # fmt: skip
    writer = ValueWriter(storage)
    location = pb.Location(name="here", latitude=1.5, longitude=2.5, timestamp_ms=7)
    answers = await asyncio.gather(
        writer.write(CALLER, device(0), numbers(s=[1.0, 2.0])),
        writer.write(CALLER, device(1), numbers(s=[3.0])),
        writer.write(CALLER, device(2), numbers(s=[4.0])),
        writer.write(CALLER, device(3), numbers(s=[5.0], t=[6.0]), location),
        return_exceptions=True,
    )
    assert answers[0] == 2 and answers[3] == 3
    assert isinstance(answers[1], NotFound) and answers[1].resource == "Device"
    assert isinstance(answers[2], ValidationFailed)
    assert answers[2].fields == {"s": ["Stream not found"]}
    # One call, carrying every write as it was given, in order.
    assert len(storage.calls) == 1
    expected = [
        pb.WriteValuesRequest(caller=CALLER, device=device(0), values=numbers(s=[1.0, 2.0])),
        pb.WriteValuesRequest(caller=CALLER, device=device(1), values=numbers(s=[3.0])),
        pb.WriteValuesRequest(caller=CALLER, device=device(2), values=numbers(s=[4.0])),
        pb.WriteValuesRequest(caller=CALLER, device=device(3), location=location,
                              values=numbers(s=[5.0], t=[6.0])),
    ]  # fmt: skip
    assert list(storage.calls[0].writes) == expected
    assert not storage.calls[0].writes[0].HasField("location")


async def test_a_lone_write_goes_at_once_and_later_ones_wait_for_a_free_call() -> None:
    storage = Storage()
    storage.hold.clear()
    writer = ValueWriter(storage, max_calls=1)
    first = asyncio.create_task(writer.write(CALLER, device(0), numbers(s=[1.0])))
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 1  # sent without waiting for company
    later = [
        asyncio.create_task(writer.write(CALLER, device(n), numbers(s=[float(n)])))
        for n in range(1, 4)
    ]
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 1  # the only call slot is taken
    storage.hold.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [1, 1, 1]
    # Everything that arrived meanwhile travelled together in the next call.
    assert [[w.device.id for w in call.writes] for call in storage.calls] == [
        [device(0).id],
        [device(1).id, device(2).id, device(3).id],
    ]


async def test_bulk_writes_take_a_second_call_slot_single_values_wait_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(value_writer, "BULK_VALUES", 3)
    storage = Storage()
    storage.hold.clear()
    writer = ValueWriter(storage)  # the adapters' defaults
    tasks = [asyncio.create_task(writer.write(CALLER, device(0), numbers(s=[1.0])))]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(writer.write(CALLER, device(1), numbers(s=[1.0]))))
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 1  # a single value waits for the call under way
    # A bulk write joins it, and the two go in a second call at once.
    tasks.append(asyncio.create_task(writer.write(CALLER, device(2), numbers(s=[1.0] * 3))))
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 2
    tasks.append(asyncio.create_task(writer.write(CALLER, device(3), numbers(s=[1.0] * 3))))
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 2  # no third slot, bulk or not
    storage.hold.set()
    assert await asyncio.gather(*tasks) == [1, 1, 3, 3]
    assert [[w.device.id for w in call.writes] for call in storage.calls] == [
        [device(0).id], [device(1).id, device(2).id], [device(3).id],
    ]  # fmt: skip


async def test_a_call_carries_at_most_max_values_but_always_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(value_writer, "MAX_VALUES_PER_CALL", 4)
    storage = Storage()
    writer = ValueWriter(storage, max_calls=1)
    sizes = [3, 1, 2, 6, 1, 1]
    answers = await asyncio.gather(*(
        writer.write(CALLER, device(n), numbers(s=[0.5] * size))
        for n, size in enumerate(sizes)
    ))  # fmt: skip
    assert answers == sizes
    calls = [[sum(w.values.counts) for w in c.writes] for c in storage.calls]
    assert calls == [[3, 1], [2], [6], [1, 1]]


async def test_a_failed_call_fails_its_writes_only() -> None:
    storage = Storage()
    storage.hold.clear()
    writer = ValueWriter(storage, max_calls=1)
    doomed = [
        asyncio.create_task(writer.write(CALLER, device(n), numbers(s=[1.0]))) for n in (0, 1)
    ]
    await asyncio.sleep(0.01)
    assert len(storage.calls) == 1
    storage.fail = RuntimeError("connection reset")
    storage.hold.set()
    for task in doomed:
        with pytest.raises(Unavailable):
            await task
    storage.fail = None
    assert await writer.write(CALLER, device(2), numbers(s=[1.0, 2.0])) == 2


async def test_a_cancelled_request_does_not_disturb_the_writes_beside_it() -> None:
    storage = Storage()
    storage.hold.clear()
    writer = ValueWriter(storage)
    tasks = [
        asyncio.create_task(writer.write(CALLER, device(n), numbers(s=[1.0]))) for n in range(3)
    ]
    await asyncio.sleep(0.01)
    tasks[1].cancel()
    storage.hold.set()
    assert await tasks[0] == 1 and await tasks[2] == 1
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    # Its write was already on its way: it is stored all the same.
    assert [w.device.id for w in storage.calls[0].writes] == [device(n).id for n in range(3)]
