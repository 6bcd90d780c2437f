"""Benchmark: single values through PUT /v2/devices/{id}/streams/{name}/value, beside bare aiohttp.

Starts keys, storage and the HTTP adapter as real processes (rate limits off) and a bare
aiohttp server answering 204 to any method as the baseline, then drives each with wrk (64
connections) and a Lua script that gives every request its own timestamp (a per-thread counter
on a base epoch, one millisecond apart, spread round-robin over the streams of one device), so
that every request stores a distinct value. The script counts the 202 answers and the requests
it sent; afterwards the stats `count` of the streams (summed) must equal the acknowledged
requests, or lie between them and the requests sent when some were still in flight as wrk
stopped. Prints req/s, p50 and p99 of both servers, their ratio, the stored-vs-acknowledged
check, CPU per process and the storage process's peak resident memory.

Target (issue 3): at least 5,000 requests/s from 64 connections with p99 under 50 ms, and every
acknowledged value stored.
Usage: python -m bench.single_values [--seconds 10] [--connections 64] [--streams 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.support import BARE_SERVER, cpu_seconds, ensure_package, product, rss_mib

TARGET_RPS = 5000
TARGET_P99_MS = 50.0
BASE_MS = 1_600_000_000_000  # 2020-09-13T12:26:40Z

# bench.keys_get's bare server, answering 204 to every method after reading the body.

# Arguments after `--`: key, path prefix ending in "/streams/", base epoch ms, expected status,
# stream names. Thread t of T sends timestamps base + n*T + t for n = 0, 1, 2, ...
LUA = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  key, prefix, base, expected = args[1], args[2], tonumber(args[3]), tonumber(args[4])
  streams = {}
  for i = 5, #args do streams[#streams + 1] = args[i] end
  sent, acked, other = 0, 0, 0
  headers = {["X-M2X-KEY"] = key, ["Content-Type"] = "application/json"}
end

function request()
  local n = sent
  sent = sent + 1
  local ms = base + n * NTHREADS + tid
  local secs = math.floor(ms / 1000)
  local body = string.format('{"value": %d.5, "timestamp": "%s.%03dZ"}',
    n, os.date("!%Y-%m-%dT%H:%M:%S", secs), ms - secs * 1000)
  return wrk.format("PUT", prefix .. streams[n % #streams + 1] .. "/value", headers, body)
end

function response(status, headers, body)
  if status == expected then acked = acked + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local s, a, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    a = a + thread:get("acked")
    o = o + thread:get("other")
  end
  io.write(string.format("SENT %d ACKED %d OTHER %d\n", s, a, o))
end
"""


def run_wrk(binary: str, script: Path, url: str, seconds: int, connections: int, threads: int,
            args: list[str]) -> dict[str, Any]:  # fmt: skip
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", str(script), url, "--", *args]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    sent, acked, other = map(int, re.search(r"SENT (\d+) ACKED (\d+) OTHER (\d+)", out).groups())  # type: ignore[union-attr]

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": millis("50%"), "p99": millis("99%"),
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": socket_errors.group(1) if socket_errors else "",
            "sent": sent, "acked": acked, "other": other}  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--streams", type=int, default=4, help="streams of the device written")
    parser.add_argument("--http-workers", type=int, default=os.cpu_count() or 1,
                        help="HTTP adapter processes (default: one per core)")  # fmt: skip
    args = parser.parse_args()
    binary = ensure_package("wrk", "wrk")
    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    streams = [f"s{i}" for i in range(args.streams)]
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "single_values.lua"
        script.write_text(LUA.replace("NTHREADS", str(args.threads)))

        def drive(
            url: str, seconds: int, key: str, prefix: str, base: int, status: int
        ) -> asyncio.Future[dict[str, Any]]:
            return loop.run_in_executor(
                None, run_wrk, binary, script, url, seconds, args.connections, args.threads,
                [key, prefix, str(base), str(status), *streams],
            )  # fmt: skip

        bare = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BARE_SERVER, stdout=asyncio.subprocess.PIPE
        )
        try:
            line = (await bare.stdout.readline()).decode()  # type: ignore[union-attr]
            bare_url = "http://" + line.split('"listen": "')[1].split('"')[0]
            await drive(bare_url, 2, "", "/v2/devices/x/streams/", BASE_MS, 204)  # warm-up
            base = await drive(bare_url, args.seconds, "", "/v2/devices/x/streams/", BASE_MS, 204)
        finally:
            bare.kill()
            await bare.wait()

        async with product(work / "m2x", args.http_workers) as stack:
            _, master = await stack.new_account()
            devices = []
            for name in ("warm-up", "bench"):
                status, device, _ = await stack.request(
                    "POST", "/v2/devices", key=master,
                    json={"name": name, "visibility": "private"},
                )  # fmt: skip
                assert status == 201, device
                for stream in streams:
                    status, body, _ = await stack.request(
                        "PUT", f"/v2/devices/{device['id']}/streams/{stream}", key=master, json={}
                    )
                    assert status == 201, body
                devices.append(device["id"])
            prefixes = [f"/v2/devices/{d}/streams/" for d in devices]
            await drive(stack.url, 2, master, prefixes[0], BASE_MS, 202)  # warm-up device
            pids = {
                "http": stack.http.process.pid,
                "storage": stack.storage.process.pid,
                "keys": stack.keys.process.pid,
            }
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            ours = await drive(stack.url, args.seconds, master, prefixes[1], BASE_MS, 202)
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            # Requests still in flight when wrk stopped may yet be stored: let them land.
            await asyncio.sleep(1.0)
            stored = 0
            for stream in streams:
                status, body, _ = await stack.request(
                    "GET", f"{prefixes[1]}{stream}/stats", key=master
                )
                assert status == 200, body
                stored += body["stats"]["count"]
            storage_rss = rss_mib(stack.storage.process.pid)

    print(
        f"PUT /v2/devices/{{id}}/streams/{{name}}/value, {args.connections} connections,"
        f" {args.seconds} s each (wrk, {args.threads} threads), one device,"
        f" {args.streams} streams, a distinct timestamp per request"
    )
    print(f"  ({os.cpu_count()} cores; 1-minute load average before the run: {load_before:.2f})")

    def line(label: str, r: dict[str, Any]) -> str:
        errors = f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""
        return (f"  {label:<17}: {r['rps']:9.0f} req/s  p50 {r['p50']:6.2f} ms"
                f"  p99 {r['p99']:6.2f} ms  non-2xx {r['non2xx']:.0f}{errors}")  # fmt: skip

    print(line("bare aiohttp 204", base))
    print(line("m2x HTTP adapter", ours))
    print(f"  ratio m2x / bare : {ours['rps'] / base['rps']:.2f}")
    in_flight = ours["sent"] - ours["acked"] - ours["other"]
    print(
        f"  requests: {ours['sent']:,} sent, {ours['acked']:,} answered 202, {ours['other']:,}"
        f" answered otherwise, {in_flight:,} unanswered when wrk stopped"
    )
    stored_ok = ours["acked"] <= stored <= ours["sent"] and not ours["other"]
    print(
        f"  values stored (sum of stats count): {stored:,}"
        f" -> {'every acknowledged value present' if stored_ok else 'MISMATCH'}"
        + (
            f" ({stored - ours['acked']} unanswered ones stored too)"
            if stored_ok and stored > ours["acked"]
            else ""
        )
    )
    print(
        "  CPU during the m2x run: "
        + ", ".join(
            f"{k} {v:.2f} s ({v / max(ours['acked'], 1) * 1e6:.0f} us/request)"
            for k, v in cpu.items()
        )
    )
    print(f"  storage peak RSS: {storage_rss:.0f} MiB")
    met = (
        ours["rps"] >= TARGET_RPS
        and ours["p99"] < TARGET_P99_MS
        and not ours["non2xx"]
        and stored_ok
    )
    print(
        f"  target ({TARGET_RPS} req/s, p99 < {TARGET_P99_MS:.0f} ms, all stored):"
        f" {'MET' if met else 'NOT MET'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
