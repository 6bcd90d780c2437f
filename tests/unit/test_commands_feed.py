"""The storage service's command feed: one watcher per delivery, registered at subscribe time."""

from __future__ import annotations

import asyncio
from typing import Any

from m2x.storage.v1 import storage_pb2 as pb
from services.storage.commands_feed import CommandDelivery, CommandsFeed
from services.storage.servicer import StorageServicer


def delivery(n: int) -> CommandDelivery:
    return CommandDelivery(f"dev{n}", f"key{n}", f"cmd{n}", "SAY", f'{{"n": {n}}}', 1000 + n)


async def take(subscription: Any, count: int) -> list[CommandDelivery]:
    taken: list[CommandDelivery] = []
    async with asyncio.timeout(1):
        async for item in subscription:
            taken.append(item)
            if len(taken) == count:
                return taken
    return taken


async def test_nothing_is_delivered_without_a_watcher() -> None:
    feed = CommandsFeed()
    assert feed.publish(delivery(1)) is False
    with feed.subscribe() as subscription:
        assert feed.publish(delivery(2)) is True
        assert await take(subscription, 1) == [delivery(2)]
    assert feed.watchers == 0
    assert feed.publish(delivery(3)) is False


async def test_each_delivery_goes_to_one_watcher_in_turn() -> None:
    feed = CommandsFeed()
    with feed.subscribe() as first, feed.subscribe() as second:
        for n in range(6):
            assert feed.publish(delivery(n))
        got_first, got_second = await take(first, 3), await take(second, 3)
    assert sorted(d.id for d in got_first + got_second) == [f"cmd{n}" for n in range(6)]
    assert {d.id for d in got_first}.isdisjoint({d.id for d in got_second})


async def test_a_full_watcher_is_skipped() -> None:
    feed = CommandsFeed(backlog=1)
    with feed.subscribe() as first, feed.subscribe() as second:
        assert feed.publish(delivery(1)) and feed.publish(delivery(2))
        assert feed.publish(delivery(3)) is False  # both are one behind
        assert len(await take(first, 1) + await take(second, 1)) == 2


class FakeContext:
    def __init__(self) -> None:
        self.registered = asyncio.Event()

    async def send_initial_metadata(self, metadata: Any) -> None:
        self.registered.set()


async def test_the_rpc_registers_before_it_answers_and_converts_each_delivery() -> None:
    feed = CommandsFeed()
    servicer = StorageServicer(*[None] * 7, commands=feed)  # type: ignore[arg-type]
    context = FakeContext()
    stream = servicer.WatchCommands(pb.WatchCommandsRequest(), context)  # type: ignore[arg-type]
    first = asyncio.ensure_future(anext(stream))
    await asyncio.wait_for(context.registered.wait(), 1)
    assert feed.publish(delivery(7))
    message = await asyncio.wait_for(first, 1)
    assert message == pb.CommandDelivery(
        device_id="dev7", device_key="key7", id="cmd7", name="SAY", data_json='{"n": 7}',
        sent_at_ms=1007,
    )  # fmt: skip
    await stream.aclose()
    assert feed.watchers == 0
