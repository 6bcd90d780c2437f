"""The MQTT adapter's workers: bounded concurrency, and nothing a request does stops them."""

from __future__ import annotations

import asyncio

from adapters.mqtt.requests import Workers


class HeldResponder:
    """Answers each request once the test lets it; some requests blow up."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def answer(self, topic: str, payload: bytes) -> tuple[str, bytes] | None:
        self.started.append(payload.decode())
        await self.release.wait()
        if payload == b"boom":
            raise RuntimeError("a bug in one request")
        return topic.replace("requests", "responses"), payload


async def test_at_most_limit_requests_run_and_the_reader_waits_for_a_slot() -> None:
    responder = HeldResponder()
    workers = Workers(responder, limit=2)  # type: ignore[arg-type]
    published: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        if payload == b"lost":
            raise ConnectionError("broker gone")
        published.append((topic, payload))

    await workers.take("m2x/k/requests", b"boom", publish)
    await workers.take("m2x/k/requests", b"lost", publish)
    third = asyncio.create_task(workers.take("m2x/k/requests", b"ok", publish))
    for _ in range(10):  # every chance to start, which it must not: both slots are held
        await asyncio.sleep(0)
    assert not third.done() and workers.busy == 2
    assert responder.started == ["boom", "lost"]

    responder.release.set()
    await asyncio.wait_for(third, 1)
    await workers.drain(1)
    assert workers.busy == 0
    assert published == [("m2x/k/responses", b"ok")]
