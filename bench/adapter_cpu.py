"""Benchmark: CPU the HTTP adapter spends per value written, over real HTTP and gRPC.

Starts keys and storage as real processes (rate limits off) and, beside the product's own
adapter, one HTTP adapter (--http-workers processes) per source tree measured: this tree, and
with --baseline DIR also the tree in DIR, so that both answer the same load from the same
services in the same run. DIR holds an earlier commit and its generated protobuf code, e.g.
`git archive COMMIT | tar -x -C DIR && cp -r m2x/keys m2x/storage m2x/triggers DIR/m2x/`.
Rounds alternate the trees (A B B A ...); in each round every tree gets

- POST /v2/devices/{id}/updates, --requests bodies of 1,000 values (10 streams x 100, as
  bench.ingest sends them) from --clients connections: adapter CPU per value;
- PUT /v2/devices/{id}/streams/{name}/value from 64 wrk connections for --seconds (as
  bench.single_values sends them): adapter CPU per request, req/s and p99.

Each round writes to fresh devices, so every write appends. Adapter CPU is the user+system time
of the adapter process and its worker copies (bench.support.cpu_seconds); other work on the
machine barely changes it, unlike throughput. Prints the median of the rounds per tree, with
the storage process's CPU beside it.

Measured (2 cores, 6 rounds) against the adapter of dee75d4: /updates 0.908 -> 0.700 us/value
(1.10M -> 1.28M values/s); PUT value 96.1 -> 84.3 us/request, storage 84.7 -> 63.4 us/request,
8.9k -> 10.2k req/s, p99 56 -> 43 ms.
Usage: python -m bench.adapter_cpu [--rounds 3] [--baseline DIR] [--http-workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.ingest import PER_STREAM, STREAMS, batches, drive
from bench.single_values import BASE_MS, LUA, run_wrk
from bench.support import ROOT, cpu_seconds, ensure_package, product
from m2x.runtime.lifecycle import parse_ready
from tests.support.stack import Stack

PUT_STREAMS = [f"s{i}" for i in range(4)]


async def start_adapter(tree: Path, stack: Stack, workers: int) -> tuple[Any, str]:
    """An HTTP adapter run from the sources in `tree`, using the stack's services."""
    keys, storage = stack.keys.listen, stack.storage.listen
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.http", "--listen", "127.0.0.1:0",
        "--keys-address", keys, "--storage-address", storage,
        "--triggers-address", stack.triggers.listen if stack.triggers else "",
        "--rate-limit-ip", "0", "--rate-limit-key", "0", "--rate-limit-device-writes", "0",
        "--workers", str(workers), "--log-level", "WARNING",
        cwd=tree, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while line := await process.stdout.readline():
            ready = parse_ready(line.decode())
            if ready:
                return process, "http://" + ready["listen"]
    raise RuntimeError(f"adapter from {tree} did not start")


async def new_device(stack: Stack, key: str, streams: list[str]) -> str:
    status, device, _ = await stack.request(
        "POST", "/v2/devices", key=key, json={"name": "bench", "visibility": "private"}
    )
    assert status == 201, device
    for stream in streams:
        status, body, _ = await stack.request(
            "PUT", f"/v2/devices/{device['id']}/streams/{stream}", key=key, json={}
        )
        assert status == 201, body
    return str(device["id"])


def cpu_of(pids: tuple[int, int]) -> tuple[float, float]:
    return cpu_seconds(pids[0]), cpu_seconds(pids[1])


async def updates_round(
    stack: Stack, key: str, pids: tuple[int, int], url: str, bodies: list[bytes], clients: int
) -> dict[str, float]:
    """/updates to a fresh device: adapter and storage CPU per value (us), values/s."""
    device = await new_device(stack, key, [f"s{s}" for s in range(STREAMS)])
    headers = {"X-M2X-KEY": key, "Content-Type": "application/json"}
    values = len(bodies) * STREAMS * PER_STREAM
    before = cpu_of(pids)
    seconds = await drive(f"{url}/v2/devices/{device}/updates", bodies, clients, headers)
    adapter, storage = (now - then for now, then in zip(cpu_of(pids), before, strict=True))
    return {"us": adapter / values * 1e6, "storage": storage / values * 1e6,
            "rate": values / seconds}  # fmt: skip


async def put_round(
    stack: Stack, key: str, pids: tuple[int, int], url: str, wrk: tuple[str, Path], seconds: int
) -> dict[str, float]:
    """PUT value to a fresh device: adapter and storage CPU per request (us), req/s, p99 (ms)."""
    device = await new_device(stack, key, PUT_STREAMS)
    args = [key, f"/v2/devices/{device}/streams/", str(BASE_MS), "202", *PUT_STREAMS]
    before = cpu_of(pids)
    result = await asyncio.to_thread(run_wrk, *wrk, url, seconds, 64, 2, args)
    adapter, storage = (now - then for now, then in zip(cpu_of(pids), before, strict=True))
    assert not result["other"], result
    acked = max(result["acked"], 1)
    return {"us": adapter / acked * 1e6, "storage": storage / acked * 1e6,
            "rate": result["rps"], "p99": result["p99"]}  # fmt: skip


def report(name: str, updates: dict[str, float], put: dict[str, float]) -> str:
    """One line: adapter CPU (storage's in brackets) and rates of both loads."""
    return (
        f"{name:<9}: /updates {updates['us']:5.3f} us/value ({updates['storage']:5.3f}),"
        f" {updates['rate']:9,.0f} values/s; PUT {put['us']:5.1f} us/request"
        f" ({put['storage']:5.1f}), {put['rate']:6,.0f} req/s, p99 {put['p99']:5.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="/updates bodies per round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5, help="PUT load per round")
    parser.add_argument("--http-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline", type=Path, help="source tree to compare with")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    asyncio.run(run(args, trees))


async def run(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    bodies = [body for body, _ in batches(args.requests)]
    load_before = os.getloadavg()[0]
    results: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {n: [] for n in trees}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "single_values.lua"
        script.write_text(LUA.replace("NTHREADS", "2"))
        wrk = (ensure_package("wrk", "wrk"), script)
        async with product(Path(tmp) / "m2x") as stack:
            _, key = await stack.new_account()
            adapters = {
                name: await start_adapter(tree, stack, args.http_workers)
                for name, tree in trees.items()
            }
            try:
                for process, url in adapters.values():  # warm-up: connections, caches
                    pids = (process.pid, stack.storage.process.pid)
                    await updates_round(stack, key, pids, url, bodies[:16], 4)
                    await put_round(stack, key, pids, url, wrk, 1)
                for n in range(args.rounds):
                    order = list(adapters.items())
                    for name, (process, url) in order if n % 2 == 0 else order[::-1]:
                        pids = (process.pid, stack.storage.process.pid)
                        updates = await updates_round(stack, key, pids, url, bodies, args.clients)
                        put = await put_round(stack, key, pids, url, wrk, args.seconds)
                        results[name].append((updates, put))
                        print(f"  round {n + 1} " + report(name, updates, put), flush=True)
            finally:
                for process, _ in adapters.values():
                    process.terminate()
                    await process.wait()

    print(
        f"HTTP adapter CPU ({args.http_workers} processes), median of {args.rounds} rounds;"
        f" {os.cpu_count()} cores, 1-minute load average before: {load_before:.2f}"
    )
    for name, rows in results.items():
        medians = [
            {k: statistics.median(row[i][k] for row in rows) for k in rows[0][i]} for i in (0, 1)
        ]
        print("  " + report(name, *medians))
    print(f"  (adapter CPU, storage CPU in brackets; /updates: {args.requests} x 1,000 values"
          f" from {args.clients} clients; PUT: 64 connections for {args.seconds} s)")  # fmt: skip


if __name__ == "__main__":
    main()
