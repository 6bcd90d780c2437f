"""Benchmark: batch ingest through POST /v2/devices/{id}/updates beside InfluxDB 1.6.

16 concurrent clients each send requests of 1,000 values (10 streams x 100 values) to the
product, then the same points as line protocol to an InfluxDB 1.6 started on loopback in the
same run. Prints values/s of both and the ratio, checks every value was stored, and prints the
storage process's peak resident memory.

Target (issue 3): values/s at least equal to InfluxDB's.
The default 4,000 requests (4M values) last long enough that the INSERTs into ClickHouse, and
not only the write-ahead log, set the pace.
Usage: python bench/ingest.py [--requests 4000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench.support import cpu_seconds, influxdb, product, rss_mib

STREAMS = 10
PER_STREAM = 100
BASE_MS = 1_600_000_000_000


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def batches(count: int) -> list[tuple[bytes, bytes]]:
    """(M2X JSON body, InfluxDB line protocol) for each request, same points in both."""
    out = []
    for n in range(count):
        values, lines = {}, []
        for s in range(STREAMS):
            points = []
            for i in range(PER_STREAM):
                ms = BASE_MS + (n * PER_STREAM + i) * 1000
                value = (n * 7 + i * 13 + s) % 1000 / 10
                points.append({"timestamp": iso(ms), "value": value})
                lines.append(f"values,stream=s{s} value={value} {ms}")
            values[f"s{s}"] = points
        out.append((orjson.dumps({"values": values}), "\n".join(lines).encode()))
    return out


async def drive(url: str, bodies: list[bytes], clients: int, headers: dict[str, str]) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status not in (202, 204):
                        raise RuntimeError(f"{response.status}: {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--http-workers", type=int, default=os.cpu_count() or 1,
                        help="HTTP adapter processes (default: one per core)")  # fmt: skip
    args = parser.parse_args()
    work = batches(args.requests)
    total = args.requests * STREAMS * PER_STREAM
    with tempfile.TemporaryDirectory() as tmp:
        async with product(Path(tmp) / "m2x", args.http_workers) as stack:
            _, master = await stack.new_account()
            _, device, _ = await stack.request("POST", "/v2/devices", key=master,
                                               json={"name": "bench", "visibility": "private"})  # fmt: skip
            base = f"/v2/devices/{device['id']}"
            for s in range(STREAMS):
                await stack.request("PUT", f"{base}/streams/s{s}", key=master, json={})
            headers = {"X-M2X-KEY": master, "Content-Type": "application/json"}
            await drive(
                stack.url + base + "/updates", [b for b, _ in work[:4]], 4, headers
            )  # warm-up
            pids = {"http": stack.http.process.pid, "storage": stack.storage.process.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            ours = await drive(
                stack.url + base + "/updates", [b for b, _ in work], args.clients, headers
            )
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            counts = [
                (await stack.request("GET", f"{base}/streams/s{s}/stats", key=master))[1]["stats"][
                    "count"
                ]
                for s in range(STREAMS)
            ]
            storage_rss = rss_mib(stack.storage.process.pid)
        (Path(tmp) / "influx").mkdir()
        async with influxdb(Path(tmp) / "influx") as url:
            await drive(url + "/write?db=bench&precision=ms", [line for _, line in work[:4]], 4, {})
            theirs = await drive(
                url + "/write?db=bench&precision=ms", [line for _, line in work], args.clients, {}
            )

    ours_rate, theirs_rate = total / ours, total / theirs
    print(
        f"Batch ingest: {args.requests} requests x 1,000 values, {args.clients} concurrent clients"
    )
    print(f"  m2x POST /updates   : {ours_rate:10,.0f} values/s  ({ours:.2f} s)")
    print(f"  InfluxDB 1.6 /write : {theirs_rate:10,.0f} values/s  ({theirs:.2f} s)")
    print(f"  ratio m2x / InfluxDB: {ours_rate / theirs_rate:.2f}")
    print(
        f"  values stored: {sum(counts):,} of {total:,} (warm-up batches rewrite the same points)"
    )
    print("  CPU during the m2x run: " + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()))
    print(f"  storage peak RSS: {storage_rss:.0f} MiB")
    print(f"  target (>= InfluxDB): {'MET' if ours_rate >= theirs_rate else 'NOT MET'}")


if __name__ == "__main__":
    asyncio.run(main())
