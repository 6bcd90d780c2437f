"""Benchmark: reads over 10 million stored values, beside InfluxDB 1.6.

Loads 10 devices x 10 streams through the public POST /v2/devices/{id}/updates (requests of up
to 3 x 10,000 values, under the default 2 MiB body limit): stream s0 of device d0 gets 1 million
values one second apart, the other 99 streams share the remaining 9 million. The same points
go to an InfluxDB 1.6 started on loopback in the same run (line protocol, 5,000-line batches,
precision=ms; measurement `values`, tags `device` and `stream`). Once both have stored them,
each read is timed one at a time from this process over HTTP, after a warm-up:

  (a) GET .../streams/s0/values?limit=100 (the last 100 values of the 1M-value stream)
  (b) GET .../streams/s0/stats over the 1M-value stream, and InfluxDB's
      count/min/max/mean/stddev over the same series
  (c) GET .../streams/s0/sampling?type=avg&interval=3600 over the 1M-value stream (all of its
      hourly buckets), and InfluxDB's mean(value) ... GROUP BY time(1h) over the same range

It prints the load rates, each figure beside InfluxDB's with the speed-up, checks the answers
agree, and prints the storage process's peak resident memory.

Target (issue 3): with 10M values stored, the last 100 values of a stream p50 under 10 ms
through HTTP; stats and 1-hour sampling over one stream of 1M values p50 under 30 ms and at
least 10 times faster than the same aggregate on InfluxDB; storage under 1 GB resident.
Usage: python -m bench.reads [--scale 1.0] [--repetitions 50]
    --scale 0.1 stores 1M values in all, 100k of them in the measured stream.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.support import cpu_seconds, influxdb, percentile, product, rss_mib

DEVICES = 10
STREAMS = 10
BASE_MS = 1_600_000_000_000  # 2020-09-13T12:26:40Z; 1M seconds later is still September
CHUNK = 10_000  # values of one stream in one request: the adapter's limit per stream
CHUNKS_PER_REQUEST = 3  # ~1.6 MB of JSON, under the default 2 MiB body limit
INFLUX_BATCH = 5_000
TARGET_LAST_MS = 10.0
TARGET_AGGREGATE_MS = 30.0
TARGET_SPEEDUP = 10.0
TARGET_RSS_MIB = 1024.0
VALUES = [repr(x / 10) for x in range(1000)]  # value of point i of stream k: VALUES[(7i+13k)%1000]


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class Layout:
    """How many values each (device, stream) holds; point i is at BASE_MS + i seconds."""

    def __init__(self, scale: float) -> None:
        self.total = round(10_000_000 * scale)
        self.big = round(1_000_000 * scale)
        rest = self.total - self.big
        others = DEVICES * STREAMS - 1
        self.counts = {(0, 0): self.big}
        for n in range(others):
            d, s = divmod(n + 1, STREAMS)
            self.counts[(d, s)] = rest // others + (1 if n < rest % others else 0)
        longest = max(self.counts.values())
        self.stamps = [iso(BASE_MS + i * 1000) for i in range(longest)]

    def requests(self) -> Iterator[tuple[int, list[tuple[int, int, int]]]]:
        """(device, [(stream, first, count), ...]) per request, devices taken in turn.

        A request holds at most one chunk per stream (a JSON object has each key once), taken
        from the streams with the most chunks left so that the 1M-value stream is not last.
        """
        queues: list[list[list[tuple[int, int, int]]]] = []
        for d in range(DEVICES):
            chunks = {
                s: [(s, i, min(CHUNK, count - i)) for i in range(0, count, CHUNK)][::-1]
                for (dd, s), count in self.counts.items()
                if dd == d
            }
            requests = []
            while any(chunks.values()):
                longest = sorted(chunks, key=lambda s: -len(chunks[s]))[:CHUNKS_PER_REQUEST]
                requests.append([chunks[s].pop() for s in longest if chunks[s]])
            queues.append(requests)
        for round_ in range(max(len(q) for q in queues)):
            for d, queue in enumerate(queues):
                if round_ < len(queue):
                    yield d, queue[round_]

    def body(self, d: int, chunks: list[tuple[int, int, int]]) -> bytes:
        parts = []
        for s, first, count in chunks:
            k, stamps = 13 * (d * STREAMS + s), self.stamps
            points = ",".join(
                f'{{"timestamp":"{stamps[i]}","value":{VALUES[(7 * i + k) % 1000]}}}'
                for i in range(first, first + count)
            )
            parts.append(f'"s{s}":[{points}]')
        return ('{"values":{' + ",".join(parts) + "}}").encode()

    def lines(self) -> Iterator[bytes]:
        """InfluxDB line protocol, INFLUX_BATCH lines per body."""
        batch: list[str] = []
        for (d, s), count in self.counts.items():
            k = 13 * (d * STREAMS + s)
            for i in range(count):
                batch.append(
                    f"values,device=d{d},stream=s{s} value={VALUES[(7 * i + k) % 1000]}"
                    f" {BASE_MS + i * 1000}"
                )
                if len(batch) == INFLUX_BATCH:
                    yield "\n".join(batch).encode()
                    batch = []
        if batch:
            yield "\n".join(batch).encode()


async def post_all(url: str, bodies: Iterator[tuple[str, bytes]], clients: int,
                   headers: dict[str, str]) -> float:  # fmt: skip
    """POST (path, body) pairs with `clients` in flight; returns the seconds it took."""
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            for path, body in bodies:  # a shared iterator: each body is built when taken
                async with session.post(url + path, data=body, headers=headers) as response:
                    if response.status not in (202, 204):
                        raise RuntimeError(f"{response.status}: {(await response.text())[:500]}")
                await asyncio.sleep(0)  # let the others take their turn to build a body

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started


async def timed(session: aiohttp.ClientSession, url: str, params: dict[str, str],
                headers: dict[str, str], repetitions: int, pids: dict[str, int],
                warm_up: int = 5) -> tuple[list[float], Any, dict[str, float]]:  # fmt: skip
    """Latencies in ms of `repetitions` GETs one at a time (after `warm_up`), the last answer,
    and the CPU ms per request each of `pids` spent (unlike latency, not inflated by other work
    on the machine)."""
    samples, answer, before = [], None, {}
    for n in range(warm_up + repetitions):
        if n == warm_up:
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        async with session.get(url, params=params, headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status}: {answer}")
        if n >= warm_up:
            samples.append((time.perf_counter() - started) * 1000)
    cpu = {
        name: (cpu_seconds(pid) - before[name]) * 1000 / repetitions for name, pid in pids.items()
    }
    return samples, answer, cpu


def influxd_pid(workdir: Path) -> int:
    """The influxd that bench.support.influxdb started with its config under `workdir`."""
    config = str(workdir / "influxdb.conf").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if config in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError("influxd process not found")


async def settle(pid: int, limit: float = 60.0) -> float:
    """Wait until the process uses under 10% of a core (background merges done); seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < 0.1:
            break
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10M values, 1M in s0")
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4, help="concurrent loading requests")
    args = parser.parse_args()
    layout = Layout(args.scale)
    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    big, reps = layout.big, args.repetitions
    window = {"start": iso(BASE_MS), "end": iso(BASE_MS + (big - 1) * 1000)}
    hours = math.ceil(big / 3600) + 1
    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    our_cpu: dict[str, dict[str, float]] = {}
    their_cpu: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with product(Path(tmp) / "m2x") as stack:
            _, master = await stack.new_account()
            ids = []
            for d in range(DEVICES):
                status, device, _ = await stack.request(
                    "POST", "/v2/devices", key=master, json={"name": f"d{d}", "visibility": "private"}
                )  # fmt: skip
                assert status == 201, device
                ids.append(device["id"])
                for s in range(STREAMS):
                    status, body, _ = await stack.request(
                        "PUT", f"/v2/devices/{device['id']}/streams/s{s}", key=master, json={}
                    )
                    assert status == 201, body
            headers = {"X-M2X-KEY": master, "Content-Type": "application/json"}
            bodies = (
                (f"/v2/devices/{ids[d]}/updates", layout.body(d, chunks))
                for d, chunks in layout.requests()
            )
            pids = {"http": stack.http.process.pid, "storage": stack.storage.process.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            load_seconds = await post_all(stack.url, bodies, args.clients, headers)
            load_cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            load_rss = rss_mib(stack.storage.process.pid)
            settled = await settle(stack.storage.process.pid)
            stored, first_read = 0, 0.0
            for d, s in layout.counts:
                started = time.perf_counter()
                status, body, _ = await stack.request(
                    "GET", f"/v2/devices/{ids[d]}/streams/s{s}/stats", key=master
                )
                if (d, s) == (0, 0):  # concurrent loading may leave s0 out of order: settled here
                    first_read = (time.perf_counter() - started) * 1000
                stored += body["stats"]["count"]

            stream_url = f"{stack.url}/v2/devices/{ids[0]}/streams/s0"
            key = {"X-M2X-KEY": master}
            async with aiohttp.ClientSession() as session:
                ours["last"], last, our_cpu["last"] = await timed(
                    session, stream_url + "/values", {"limit": "100"}, key, reps, pids
                )
                ours["stats"], m2x_stats, our_cpu["stats"] = await timed(
                    session, stream_url + "/stats", {}, key, reps, pids
                )
                ours["sampling"], m2x_sampling, our_cpu["sampling"] = await timed(
                    session, stream_url + "/sampling",
                    {"type": "avg", "interval": "3600", "limit": str(hours), **window}, key, reps,
                    pids,
                )  # fmt: skip
            storage_rss = rss_mib(stack.storage.process.pid)

        (Path(tmp) / "influx").mkdir()
        async with influxdb(Path(tmp) / "influx") as url:
            influx_seconds = await post_all(
                url, (("/write?db=bench&precision=ms", body) for body in layout.lines()),
                args.clients, {},
            )  # fmt: skip
            where = "device = 'd0' AND stream = 's0'"
            span = f"time >= {BASE_MS}ms AND time <= {BASE_MS + (big - 1) * 1000}ms"
            queries = {
                "last": f'SELECT value FROM "values" WHERE {where} ORDER BY time DESC LIMIT 100',
                "stats": "SELECT count(value), min(value), max(value), mean(value),"
                f' stddev(value) FROM "values" WHERE {where}',
                "sampling": f'SELECT mean(value) FROM "values" WHERE {where} AND {span}'
                " GROUP BY time(1h) fill(none)",
            }
            answers = {}
            influxd = {"influxd": influxd_pid(Path(tmp) / "influx")}
            async with aiohttp.ClientSession() as session:
                for name, q in queries.items():
                    theirs[name], answers[name], their_cpu[name] = await timed(
                        session, url + "/query", {"db": "bench", "q": q, "epoch": "ms"}, {},
                        reps, influxd,
                    )  # fmt: skip

    def series(answer: Any) -> list[list[Any]]:
        return answer["results"][0]["series"][0]["values"]

    influx_stats = series(answers["stats"])[0]
    agree = {
        "last": [v["value"] for v in last["values"]] == [r[1] for r in series(answers["last"])],
        "stats": m2x_stats["stats"]["count"] == influx_stats[1] == big
        and m2x_stats["stats"]["min"] == influx_stats[2]
        and m2x_stats["stats"]["max"] == influx_stats[3]
        and math.isclose(m2x_stats["stats"]["avg"], influx_stats[4], rel_tol=1e-9),
        "sampling": len(m2x_sampling["values"]) == len(series(answers["sampling"]))
        and all(
            math.isclose(a["value"], b[1], rel_tol=1e-9)
            for a, b in zip(
                m2x_sampling["values"], reversed(series(answers["sampling"])), strict=True
            )
        ),
    }

    print(
        f"Reads with {layout.total:,} values stored ({DEVICES} devices x {STREAMS} streams;"
        f" the measured stream d0/s0 holds {big:,}), {reps} sequential requests each after a"
        " warm-up of 5"
    )
    print(f"  ({os.cpu_count()} cores; 1-minute load average before the run: {load_before:.2f})")
    print(
        f"  load m2x POST /updates : {layout.total / load_seconds:10,.0f} values/s"
        f"  ({load_seconds:.1f} s; CPU "
        + ", ".join(f"{k} {v:.0f} s" for k, v in load_cpu.items())
        + f"); stored {stored:,} of {layout.total:,}; merges settled after {settled:.0f} s"
    )
    print(
        f"  load InfluxDB /write   : {layout.total / influx_seconds:10,.0f} values/s"
        f"  ({influx_seconds:.1f} s)"
    )
    labels = {
        "last": "last 100 values",
        "stats": f"stats over {big:,}",
        "sampling": f"avg per hour over {big:,} ({len(m2x_sampling['values'])} buckets)",
    }
    for name, label in labels.items():
        p50, p99 = percentile(ours[name], 0.5), percentile(ours[name], 0.99)
        i50, i99 = percentile(theirs[name], 0.5), percentile(theirs[name], 0.99)
        print(
            f"  {label:<40}: m2x p50 {p50:7.2f} ms p99 {p99:7.2f} ms | InfluxDB p50 {i50:7.2f} ms"
            f" p99 {i99:7.2f} ms | speed-up {i50 / p50:5.1f}x | answers agree: {agree[name]}"
        )
        print(
            f"  {'':<40}  CPU per request: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in {**our_cpu[name], **their_cpu[name]}.items())
        )
    print(f"  first read of d0/s0 after loading (stats): {first_read:.0f} ms")
    print(f"  storage peak RSS: {storage_rss:.0f} MiB (after loading: {load_rss:.0f} MiB)")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    p50 = {name: percentile(samples, 0.5) for name, samples in ours.items()}
    i50 = {name: percentile(samples, 0.5) for name, samples in theirs.items()}
    print(f"  target last 100 values p50 < {TARGET_LAST_MS:.0f} ms: "
          f"{verdict(p50['last'] < TARGET_LAST_MS)}")  # fmt: skip
    for name in ("stats", "sampling"):
        ok = p50[name] < TARGET_AGGREGATE_MS and i50[name] / p50[name] >= TARGET_SPEEDUP
        print(
            f"  target {name} p50 < {TARGET_AGGREGATE_MS:.0f} ms and >= {TARGET_SPEEDUP:.0f}x"
            f" InfluxDB: {verdict(ok)}"
        )
    print(
        f"  target storage RSS < {TARGET_RSS_MIB:.0f} MiB: {verdict(storage_rss < TARGET_RSS_MIB)}"
    )
    if args.scale != 1.0:
        print(f"  (scale {args.scale}: the targets are stated for 10M values / a 1M-value stream)")


if __name__ == "__main__":
    asyncio.run(main())
