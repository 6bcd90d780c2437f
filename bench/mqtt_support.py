"""What the MQTT benchmarks share: a bare responder on the broker, and a device driving load.

Run as `python -m bench.mqtt_support bare --data-dir DIR --broker HOST:PORT`, the bare
responder consumes the adapters' shared subscription with the same client library and event
loop as the adapter, and answers every request 202 without looking at it beyond its id.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support import percentile  # noqa: E402
from m2x.broker.files import BrokerFiles, read_credentials  # noqa: E402
from m2x.runtime.lifecycle import announce_ready  # noqa: E402

ACCEPTED = {"status": "accepted"}


async def bare_responder(data_dir: Path, broker: str) -> None:
    credentials = read_credentials(BrokerFiles.of(data_dir))
    assert credentials is not None, "no broker credentials in the data dir"
    host, _, port = broker.rpartition(":")
    async with aiomqtt.Client(
        host, int(port), username=credentials.user, password=credentials.password,
        protocol=aiomqtt.ProtocolVersion.V5, identifier=f"bare-{uuid.uuid4().hex[:8]}",
    ) as client:  # fmt: skip
        client.pending_calls_threshold = 1_000_000
        await client.subscribe(f"$share/{credentials.share_group}/m2x/+/requests")
        announce_ready("bare", broker)
        answering: set[asyncio.Task[None]] = set()
        async for message in client.messages:
            key = str(message.topic).split("/")[1]
            request_id = orjson.loads(message.payload)["id"]  # type: ignore[arg-type]
            answer = {"id": request_id, "status": 202, "body": ACCEPTED}
            # Not awaited in turn: like the adapter, the next request is read meanwhile.
            task = asyncio.create_task(client.publish(f"m2x/{key}/responses", orjson.dumps(answer)))
            answering.add(task)
            task.add_done_callback(answering.discard)


@dataclass
class Load:
    """What one run of the driver saw."""

    seconds: float = 0.0
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # of the expected answers
    other: dict[int, int] = field(default_factory=dict)  # status -> count of other answers

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


Request = Callable[[int], dict[str, Any]]


def value_writes(paths: list[str], base_ms: int) -> Request:
    """Request n: a single value on paths[n % len(paths)], timestamped base + n ms."""

    def request(n: int) -> dict[str, Any]:
        ms = base_ms + n
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
        body = {"value": n + 0.5, "timestamp": f"{stamp}.{ms % 1000:03d}Z"}
        return {"id": n, "method": "PUT", "resource": paths[n % len(paths)], "body": body}

    return request


def time_reads(n: int) -> dict[str, Any]:
    """A request the API layer answers without calling any service."""
    return {"id": n, "method": "GET", "resource": "/v2/time"}


async def drive(
    port: int, key: str, make: Request, expected: int, seconds: float, inflight: int
) -> Load:
    """`inflight` requests at a time from one device connection for `seconds`; request n is
    `make(n)` and counts as answered when its status is `expected`."""
    load = Load()
    waiting: dict[int, asyncio.Future[int]] = {}
    counter = itertools.count()
    async with aiomqtt.Client(
        "127.0.0.1", port, username=key, identifier=f"bench-{uuid.uuid4().hex[:8]}"
    ) as client:
        client.pending_calls_threshold = inflight + 16  # each worker has one publish at most
        await client.subscribe(f"m2x/{key}/responses")

        async def receive() -> None:
            async for message in client.messages:
                answer = orjson.loads(message.payload)  # type: ignore[arg-type]
                future = waiting.pop(answer["id"], None)
                if future is not None and not future.done():
                    future.set_result(answer["status"])

        async def worker(stop_at: float) -> None:
            loop = asyncio.get_running_loop()
            while loop.time() < stop_at:
                n = next(counter)
                future: asyncio.Future[int] = loop.create_future()
                waiting[n] = future
                started = time.perf_counter()
                load.sent += 1
                await client.publish(f"m2x/{key}/requests", orjson.dumps(make(n)))
                try:
                    status = await asyncio.wait_for(future, 10)
                except TimeoutError:
                    waiting.pop(n, None)
                    status = 0
                if status == expected:
                    load.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    load.other[status] = load.other.get(status, 0) + 1

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        stop_at = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(*(worker(stop_at) for _ in range(inflight)))
        load.seconds = time.perf_counter() - started
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return load


def summary(label: str, load: Load) -> str:
    others = ", ".join(f"{status or 'none'}: {n}" for status, n in sorted(load.other.items()))
    return (
        f"  {label:<22}: {load.rps:7.0f} req/s  p50 {percentile(load.latencies_ms, 0.5):6.2f} ms"
        f"  p99 {percentile(load.latencies_ms, 0.99):6.2f} ms"
        + (f"  other answers: {others}" if others else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.mqtt_support")
    parser.add_argument("role", choices=["bare"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--broker", required=True, help="backend listener host:port")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(bare_responder(args.data_dir, args.broker))


if __name__ == "__main__":
    main()
