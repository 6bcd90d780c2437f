"""Benchmark: trigger notification latency, and batch ingest with triggers active vs none.

Starts keys, storage, triggers and the HTTP adapter as real processes (rate limits off) and a
webhook receiver in this process. In one run:
1. batch ingest with no trigger at all (bench.ingest's requests: 1,000 values each, 10
   streams, 16 clients) into one device;
2. 1,000 enabled continuous triggers on 100 devices x 10 streams, each firing on every value,
   plus 10 on the ingest device's streams whose conditions never hold (evaluated, silent);
3. values at 1,000 values/s (open loop, one PUT .../value per value, spread over the 1,000
   streams): for each, the time from its 202 to its notification's arrival at the receiver;
4. the same batch ingest again, with those triggers active.
Prints p50/p99/max latency, notifications received vs values acknowledged, both ingest rates
and their ratio, and CPU per process.

Targets (issue 4): p99 under 100 ms; ingest with triggers within 10% of ingest with none.
Usage: python -m bench.triggers_latency [--rate 1000] [--seconds 10] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web

from bench.ingest import batches, drive
from bench.support import cpu_seconds, percentile, product
from tests.support.stack import Stack

DEVICES = 100
STREAMS = 10
TARGET_P99_MS = 100.0
TARGET_INGEST_RATIO = 0.90


class Hook:
    """The webhook receiver: arrival time of each notification, by the value it carries."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = time.perf_counter()
        for value in body["values"].values():
            self.arrived.setdefault(int(value["value"]), now)
        return web.Response(text="OK")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0, backlog=1024).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"


async def ok(stack: Stack, method: str, path: str, key: str, body: object = None) -> dict:
    status, answer, _ = await stack.request(method, path, key=key, json=body)
    assert status in (200, 201, 202, 204), (status, answer)
    return answer if isinstance(answer, dict) else {}


async def setup_triggers(stack: Stack, key: str, hook: Hook, ingest_device: str) -> list[str]:
    """The 1,000 notifying triggers' stream paths (and 10 silent ones on the ingest device)."""
    paths = []
    for n in range(DEVICES):
        device = await ok(stack, "POST", "/v2/devices", key,
                          {"name": f"d{n}", "visibility": "private"})  # fmt: skip
        base = f"/v2/devices/{device['id']}"
        for s in range(STREAMS):
            await ok(stack, "PUT", f"{base}/streams/s{s}", key, {})
            await ok(stack, "POST", f"{base}/triggers", key, {
                "name": f"t{s}", "frequency": "continuous", "callback_url": hook.url,
                "conditions": {f"s{s}": {"gte": 0}},
            })  # fmt: skip
            paths.append(f"{base}/streams/s{s}/value")
    for s in range(STREAMS):
        await ok(stack, "POST", f"/v2/devices/{ingest_device}/triggers", key, {
            "name": f"silent{s}", "frequency": "continuous", "callback_url": hook.url,
            "conditions": {f"s{s}": {"gt": 1e12}},
        })  # fmt: skip
    return paths


async def paced_values(url: str, key: str, paths: list[str], rate: int, seconds: float
                       ) -> tuple[dict[int, float], int]:  # fmt: skip
    """PUT value n at t0 + n/rate (open loop); value n's 202 time, and how many failed."""
    acked: dict[int, float] = {}
    failed = 0
    headers = {"X-M2X-KEY": key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(n: int) -> None:
            nonlocal failed
            body = orjson.dumps({"value": n})
            async with session.put(url + paths[n % len(paths)], data=body,
                                   headers=headers) as response:  # fmt: skip
                await response.read()
                if response.status == 202:
                    acked[n] = time.perf_counter()
                else:
                    failed += 1

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(n)))
        await asyncio.gather(*tasks)
    return acked, failed


async def ingest(stack: Stack, key: str, device: str, bodies: list[bytes], clients: int) -> float:
    headers = {"X-M2X-KEY": key, "Content-Type": "application/json"}
    url = f"{stack.url}/v2/devices/{device}/updates"
    return await drive(url, bodies, clients, headers)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    work = [body for body, _ in batches(args.requests)]
    hook = Hook()
    await hook.start()
    with tempfile.TemporaryDirectory() as tmp:
        async with product(Path(tmp) / "m2x") as stack:
            _, key = await stack.new_account()
            device = (await ok(stack, "POST", "/v2/devices", key,
                               {"name": "ingest", "visibility": "private"}))["id"]  # fmt: skip
            for s in range(STREAMS):
                await ok(stack, "PUT", f"/v2/devices/{device}/streams/s{s}", key, {})
            await ingest(stack, key, device, work[:8], 4)  # warm-up
            none = await ingest(stack, key, device, work, args.clients)

            paths = await setup_triggers(stack, key, hook, device)
            await paced_values(stack.url, key, paths[:50], 200, 1.0)  # warm-up (caches)
            hook.arrived.clear()
            assert stack.triggers is not None
            pids = {c.name: c.process.pid for c in (stack.http, stack.storage, stack.triggers)}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            acked, failed = await paced_values(stack.url, key, paths, args.rate, args.seconds)
            deadline = time.perf_counter() + 30
            while not acked.keys() <= hook.arrived.keys() and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            with_triggers = await ingest(stack, key, device, work, args.clients)
    assert hook.runner is not None
    await hook.runner.cleanup()

    latencies = [max(0.0, hook.arrived[n] - t) * 1000 for n, t in acked.items()
                 if n in hook.arrived]  # fmt: skip
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    total = args.requests * 1000
    rate_none, rate_with = total / none, total / with_triggers
    print(f"Trigger notifications: {DEVICES * STREAMS:,} notifying triggers (+{STREAMS} silent "
          f"ones on the ingest device), {args.rate:,} values/s for {args.seconds:.0f} s")  # fmt: skip
    print(f"  values acknowledged: {len(acked):,} (failed {failed}); notifications received "
          f"for them: {len(latencies):,}")  # fmt: skip
    print(f"  202 -> webhook: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms")
    print("  CPU during the paced run: " + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()))
    print(f"Batch ingest ({args.requests} requests x 1,000 values, {args.clients} clients):")
    print(f"  no triggers          : {rate_none:10,.0f} values/s")
    print(f"  with triggers active : {rate_with:10,.0f} values/s")
    print(f"  ratio with / without : {rate_with / rate_none:.2f}")
    met_latency = p99 < TARGET_P99_MS and len(latencies) == len(acked)
    met_ingest = rate_with >= TARGET_INGEST_RATIO * rate_none
    print(f"  target p99 < {TARGET_P99_MS:.0f} ms, none missing: "
          f"{'MET' if met_latency else 'NOT MET'}")  # fmt: skip
    print(f"  target ingest within 10%: {'MET' if met_ingest else 'NOT MET'}")


if __name__ == "__main__":
    uvloop.run(main())
