"""Benchmark: batch ingest through POST /v2/devices/{id}/updates beside InfluxDB 1.6.

16 concurrent clients each send requests of 1,000 values (10 streams x 100 values) to the
product, then the same points as line protocol to an InfluxDB 1.6 started on loopback in the
same run. Prints values/s of both and the ratio, checks every value was stored, and prints the
storage process's peak resident memory.

The two take turns for --rounds rounds (product, InfluxDB, product, InfluxDB...), each turn on
a fresh product or server: the speed of the machines here drifts by 2x and more within a
minute, so one turn each compared whichever happened to run in the faster minute. The verdict
compares all values over all time of each.

Target (issue 3): values/s at least equal to InfluxDB's.
The default 4,000 requests (4M values) a turn last long enough that the INSERTs into
ClickHouse, and not only the write-ahead log, set the pace.
The product runs as README.md sizes it for this load (see ingest_workers).
Usage: python bench/ingest.py [--requests 4000] [--clients 16] [--rounds 3] [--http-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

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


async def ours(work: list[bytes], clients: int, http_workers: int) -> dict[str, Any]:
    """One turn of the product, fresh: seconds, CPU of its processes, values stored, RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        async with product(Path(tmp) / "m2x", http_workers) as stack:
            _, master = await stack.new_account()
            _, device, _ = await stack.request("POST", "/v2/devices", key=master,
                                               json={"name": "bench", "visibility": "private"})  # fmt: skip
            base = f"/v2/devices/{device['id']}"
            for s in range(STREAMS):
                await stack.request("PUT", f"{base}/streams/s{s}", key=master, json={})
            headers = {"X-M2X-KEY": master, "Content-Type": "application/json"}
            url = stack.url + base + "/updates"
            await drive(url, work[:4], 4, headers)  # warm-up
            pids = {"http": stack.http.process.pid, "storage": stack.storage.process.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            seconds = await drive(url, work, clients, headers)
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            stored = 0
            for s in range(STREAMS):
                _, stats, _ = await stack.request("GET", f"{base}/streams/s{s}/stats", key=master)
                stored += stats["stats"]["count"]
            rss = rss_mib(stack.storage.process.pid)
    return {"seconds": seconds, "cpu": cpu, "stored": stored, "rss": rss}


async def theirs(work: list[bytes], clients: int) -> float:
    """One turn of a fresh InfluxDB: seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        async with influxdb(Path(tmp)) as url:
            url += "/write?db=bench&precision=ms"
            await drive(url, work[:4], 4, {})
            return await drive(url, work, clients, {})


def ingest_workers() -> int:
    """The sizing README.md gives for batch ingest: one HTTP adapter process per core left
    after the storage service's. Storage takes about a core at full ingest (its event loop
    and ClickHouse's INSERTs); a worker on that core only adds contention: on 2 cores, 2
    workers took ~12% more CPU per value than 1 and stored no more values a second."""
    return max(1, (os.cpu_count() or 1) - 1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of each, alternating (default 3)")  # fmt: skip
    parser.add_argument("--http-workers", type=int, default=ingest_workers(),
                        help="HTTP adapter processes (default: one per core beside storage's)")  # fmt: skip
    args = parser.parse_args()
    work = batches(args.requests)
    total = args.requests * STREAMS * PER_STREAM
    print(f"Batch ingest: {args.requests} requests x 1,000 values, {args.clients} concurrent "
          f"clients, {args.rounds} alternating turns each; {os.cpu_count()} cores, "
          f"{args.http_workers} HTTP adapter process(es)")  # fmt: skip
    our_turns, their_turns = [], []
    for turn in range(1, args.rounds + 1):
        our_turns.append(await ours([b for b, _ in work], args.clients, args.http_workers))
        their_turns.append(await theirs([line for _, line in work], args.clients))
        ours_rate, theirs_rate = total / our_turns[-1]["seconds"], total / their_turns[-1]
        cpu = our_turns[-1]["cpu"]
        print(f"  turn {turn}: m2x {ours_rate:10,.0f} values/s, InfluxDB {theirs_rate:10,.0f} "
              f"values/s, ratio {ours_rate / theirs_rate:.2f}  (m2x CPU: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items()) + ")")  # fmt: skip
    ours_rate = total * args.rounds / sum(t["seconds"] for t in our_turns)
    theirs_rate = total * args.rounds / sum(their_turns)
    print(f"  m2x POST /updates   : {ours_rate:10,.0f} values/s  (all turns)")
    print(f"  InfluxDB 1.6 /write : {theirs_rate:10,.0f} values/s  (all turns)")
    print(f"  ratio m2x / InfluxDB: {ours_rate / theirs_rate:.2f}")
    stored = [t["stored"] for t in our_turns]
    print(f"  values stored: {min(stored):,} of {total:,} in every turn"
          if min(stored) == total else f"  values stored: {stored} of {total:,}: MISSING VALUES")  # fmt: skip
    print(f"  storage peak RSS: {max(t['rss'] for t in our_turns):.0f} MiB")
    met = ours_rate >= theirs_rate and min(stored) == total
    print(f"  target (>= InfluxDB): {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    asyncio.run(main())
