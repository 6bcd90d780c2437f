"""Benchmark: trigger notification latency, and batch ingest with triggers active vs none.

Starts keys, storage, triggers and the HTTP adapter as real processes (rate limits off) and a
minimal webhook receiver and HTTP client in this process. In one run:
1. batch ingest (bench.ingest's requests: 1,000 values each, 10 streams, 16 clients) into two
   devices with no trigger in the system, alternating with step 3: the triggers of step 2
   are created, step 3 runs, they are deleted, step 1 runs again (--rounds times);
2. 1,000 enabled continuous triggers on 100 devices x 10 streams, each firing on every value,
   plus 10 silent ones (conditions that never hold) on the second ingest device's streams;
3. the same batch ingest again, with those triggers active: into the first device (the target:
   triggers elsewhere must not slow ingest) and into the second, whose every value the
   triggers service evaluates (reported, not a target: it shares the same two cores);
4. values at 1,000 values/s (open loop, one PUT .../value per value, spread over the 1,000
   streams, after a warm-up over every stream): for each, the time from its 202 to its
   notification's arrival at the receiver.
Prints p50/p99/max latency, notifications received vs values acknowledged, the ingest rates
and ratios, and CPU per process during step 4.

Targets (issue 4): p99 under 100 ms; ingest with triggers within 10% of ingest with none.
Usage: python -m bench.triggers_latency [--rate 1000] [--seconds 10] [--requests 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

from bench.ingest import batches, drive
from bench.support import cpu_seconds, percentile, product
from tests.support.stack import Stack
from tests.support.waiting import eventually

DEVICES = 100
STREAMS = 10
TARGET_P99_MS = 100.0
TARGET_INGEST_RATIO = 0.90


class Hook(asyncio.Protocol):
    """A minimal HTTP/1.1 webhook receiver (keep-alive, Content-Length bodies): records the
    arrival time of each notification by the value it carries. Lighter than aiohttp's server,
    so that the measuring harness is not what saturates the machine."""

    arrived: dict[int, float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while message := _next_message(self.buffer):
            _, body, self.buffer = message
            now = time.perf_counter()
            for value in orjson.loads(body)["values"].values():
                Hook.arrived.setdefault(int(value["value"]), now)
            self.transport.write(OK)  # type: ignore[attr-defined]


def _next_message(buffer: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(head, body, what follows) of the first whole HTTP message in `buffer`, or None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    end = head_end + 4 + _content_length(buffer[: head_end + 2])
    if len(buffer) < end:
        return None
    return buffer[: head_end + 2], buffer[head_end + 4 : end], buffer[end:]


def _content_length(head: bytes) -> int:
    """The Content-Length of a message head (which ends with CRLF), 0 without one."""
    head = head.lower()
    at = head.find(b"content-length:")
    return int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"


async def start_hook() -> tuple[asyncio.Server, str]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hook, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hook"


class Client(asyncio.Protocol):
    """One keep-alive connection sending prepared requests, one at a time."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""
        self.answer: asyncio.Future[int] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        message = _next_message(self.buffer)
        if message is None:
            return
        head, _, self.buffer = message
        status = int(head[9:12])
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(status)

    async def send(self, request: bytes) -> int:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)  # type: ignore[attr-defined]
        return await self.answer


async def ok(stack: Stack, method: str, path: str, key: str, body: object = None) -> dict:
    status, answer, _ = await stack.request(method, path, key=key, json=body)
    assert status in (200, 201, 202, 204), (status, answer)
    return answer if isinstance(answer, dict) else {}


async def setup_devices(stack: Stack, key: str) -> list[str]:
    """The 1,000 streams' value paths, on 100 devices."""
    paths = []
    for n in range(DEVICES):
        device = await new_device(stack, key, f"d{n}")
        paths += [f"/v2/devices/{device}/streams/s{s}/value" for s in range(STREAMS)]
    return paths


async def create_triggers(stack: Stack, key: str, hook_url: str, paths: list[str],
                          watched: str) -> list[str]:  # fmt: skip
    """A notifying trigger per stream, 10 silent ones on `watched`; their paths."""
    made = []
    for path in paths:
        base, _, rest = path.partition("/streams/")
        stream = rest.split("/")[0]
        answer = await ok(stack, "POST", f"{base}/triggers", key, {
            "name": stream, "frequency": "continuous", "callback_url": hook_url,
            "conditions": {stream: {"gte": 0}},
        })  # fmt: skip
        made.append(f"{base}/triggers/{answer['id']}")
    for s in range(STREAMS):
        answer = await ok(stack, "POST", f"/v2/devices/{watched}/triggers", key, {
            "name": f"silent{s}", "frequency": "continuous", "callback_url": hook_url,
            "conditions": {f"s{s}": {"gt": 1e12}},
        })  # fmt: skip
        made.append(f"/v2/devices/{watched}/triggers/{answer['id']}")
    return made


async def paced_values(url: str, key: str, paths: list[str], rate: int, seconds: float
                       ) -> tuple[dict[int, float], int]:  # fmt: skip
    """PUT value n at t0 + n/rate (open loop); value n's 202 time, and how many failed."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split(":")
    idle: list[Client] = []
    for _ in range(64):
        idle.append((await loop.create_connection(Client, host, int(port)))[1])
    free = asyncio.Condition()
    acked: dict[int, float] = {}
    failed = 0

    def request(n: int) -> bytes:
        body = orjson.dumps({"value": n})
        return (f"PUT {paths[n % len(paths)]} HTTP/1.1\r\nHost: {host}\r\nX-M2X-KEY: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body  # fmt: skip

    async def send(n: int) -> None:
        nonlocal failed
        async with free:
            await free.wait_for(lambda: bool(idle))
            client = idle.pop()
        status = await client.send(request(n))
        if status == 202:
            acked[n] = time.perf_counter()
        else:
            failed += 1
        async with free:
            idle.append(client)
            free.notify()

    tasks = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n)))
    await asyncio.gather(*tasks)
    for client in idle:
        client.transport.close()
    return acked, failed


async def ingest(stack: Stack, key: str, device: str, bodies: list[bytes], clients: int) -> float:
    headers = {"X-M2X-KEY": key, "Content-Type": "application/json"}
    url = f"{stack.url}/v2/devices/{device}/updates"
    return await drive(url, bodies, clients, headers)


async def new_device(stack: Stack, key: str, name: str) -> str:
    device = (await ok(stack, "POST", "/v2/devices", key,
                       {"name": name, "visibility": "private"}))["id"]  # fmt: skip
    for s in range(STREAMS):
        await ok(stack, "PUT", f"/v2/devices/{device}/streams/s{s}", key, {})
    return str(device)


async def ingest_rates(stack: Stack, key: str, devices: list[str], work: list[bytes],
                       clients: int, rounds: int) -> list[float]:  # fmt: skip
    """Values/s of each device's batch ingest, the best of `rounds` alternating runs."""
    best = [0.0] * len(devices)
    for _ in range(rounds):
        for i, device in enumerate(devices):
            seconds = await ingest(stack, key, device, work, clients)
            best[i] = max(best[i], len(work) * 1000 / seconds)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = [body for body, _ in batches(args.requests)]
    hook_server, hook_url = await start_hook()
    arrived = Hook.arrived
    with tempfile.TemporaryDirectory() as tmp:
        async with product(Path(tmp) / "m2x") as stack:
            _, key = await stack.new_account()
            plain, watched = [await new_device(stack, key, n) for n in ("plain", "watched")]
            for device in (plain, watched):
                await ingest(stack, key, device, work[:8], 4)  # warm-up
            rates = lambda: ingest_rates(  # noqa: E731
                stack, key, [plain, watched], work, args.clients, 1
            )
            paths = await setup_devices(stack, key)
            # A-B-A-B-A: no triggers, 1,010 triggers, none again (deleted)...; comparing the
            # B runs with the A runs around them cancels drift (storage merging what earlier
            # runs wrote, other load on the machine). Then the triggers come back for step 4.
            without: list[list[float]] = [await rates()]
            active_runs: list[list[float]] = []
            for _ in range(args.rounds):
                made = await create_triggers(stack, key, hook_url, paths, watched)
                active_runs.append(await rates())
                for trigger in made:
                    await ok(stack, "DELETE", trigger, key)
                without.append(await rates())
            none = [sum(r[i] for r in without) / len(without) for i in range(2)]
            active = [sum(r[i] for r in active_runs) / len(active_runs) for i in range(2)]
            await create_triggers(stack, key, hook_url, paths, watched)
            warm, _ = await paced_values(stack.url, key, paths, 500, 2.0)  # every stream once
            await eventually(lambda: _arrived(warm, arrived), bool, within=30)
            arrived.clear()
            assert stack.triggers is not None
            pids = {c.name: c.process.pid for c in (stack.http, stack.storage, stack.triggers)}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            bench_before = sum(os.times()[:2])
            acked, failed = await paced_values(stack.url, key, paths, args.rate, args.seconds)
            await eventually(lambda: _arrived(acked, arrived), bool, within=30)
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            cpu["bench (client + receiver)"] = sum(os.times()[:2]) - bench_before
    hook_server.close()

    latencies = [max(0.0, arrived[n] - t) * 1000 for n, t in acked.items()
                 if n in arrived]  # fmt: skip
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"Trigger notifications: {DEVICES * STREAMS:,} notifying triggers (+{STREAMS} silent "
          f"ones on a second ingest device), {args.rate:,} values/s for {args.seconds:.0f} s")  # fmt: skip
    print(f"  values acknowledged: {len(acked):,} (failed {failed}); notifications received "
          f"for them: {len(latencies):,}")  # fmt: skip
    print(f"  202 -> webhook: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms")
    print("  CPU during the paced run: " + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()))
    print(f"Batch ingest ({args.requests} requests x 1,000 values, {args.clients} clients, "
          f"{args.rounds} runs with triggers between {args.rounds + 1} without; means):")  # fmt: skip
    print(
        "  no triggers in the system (each run)        : "
        + " / ".join(f"{r[0]:,.0f}" for r in without)
        + " values/s"
    )
    print(f"  device without triggers, 1,010 active       : {active[0]:10,.0f} values/s"
          f"  ({active[0] / none[0]:.2f} of the mean without)")  # fmt: skip
    print(f"  device with 10 silent triggers (evaluated)  : {active[1]:10,.0f} values/s"
          f"  ({active[1] / none[1]:.2f} of the same device without)")  # fmt: skip
    met_latency = p99 < TARGET_P99_MS and len(latencies) == len(acked)
    met_ingest = active[0] >= TARGET_INGEST_RATIO * none[0]
    print(f"  target p99 < {TARGET_P99_MS:.0f} ms, none missing: "
          f"{'MET' if met_latency else 'NOT MET'}")  # fmt: skip
    print(f"  target ingest within 10% with triggers active: {'MET' if met_ingest else 'NOT MET'}")


async def _arrived(acked: dict[int, float], arrived: dict[int, float]) -> bool:
    return acked.keys() <= arrived.keys()


if __name__ == "__main__":
    uvloop.run(main())
