"""Benchmark: authenticated GET /v2/keys/{key} through the HTTP adapter, beside bare aiohttp.

Starts the keys service and the HTTP adapter as real processes, and a bare aiohttp server
answering 204 as the baseline, then drives each with wrk (64 connections) and prints
requests/s, latency and the ratio. It also prints the CPU time the keys service spent during
the run: with the principal cache working, steady-state requests cost it nothing.

Target (issue 2): at least 5,000 requests/s on a 2-core machine.
Usage: python bench/keys_get.py [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import BARE_SERVER, cpu_seconds, ensure_package  # noqa: E402
from m2x.keys.v1 import keys_pb2 as pb  # noqa: E402
from m2x.keys.v1 import keys_pb2_grpc  # noqa: E402
from m2x.runtime.grpc_client import open_channel  # noqa: E402
from tests.support.processes import start_component  # noqa: E402

TARGET_RPS = 5000
TRACING = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.1",
}


def wrk(binary: str, url: str, seconds: int, connections: int, key: str = "") -> dict[str, float]:
    command = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if key:
        command[1:1] = ["-H", f"X-M2X-KEY: {key}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": millis("50%"), "p99": millis("99%"),
            "non2xx": float(errors.group(1)) if errors else 0.0}  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    binary = ensure_package("wrk", "wrk")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keys = await start_component("services.keys", "keys", work, "--data-dir", tmp)
        # Limits far above the load, so the limiter runs on every request but never refuses.
        http = await start_component(
            "adapters.http", "http", work, "--listen", "127.0.0.1:0", "--keys-address",
            keys.listen, "--rate-limit-key", "10000000", "--rate-limit-ip", "10000000",
        )  # fmt: skip
        bare = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BARE_SERVER, stdout=asyncio.subprocess.PIPE
        )
        try:
            bare_listen = (await bare.stdout.readline()).decode().split('"listen": "')[1][:-3]  # type: ignore[union-attr]
            channel = open_channel(keys.listen)
            stub = keys_pb2_grpc.KeysServiceStub(channel)
            account = (await stub.CreateAccount(pb.CreateAccountRequest(name="bench"))).account
            other = await stub.CreateKey(pb.CreateKeyRequest(
                account_id=account.id, spec=pb.KeySpec(name="read-only", permissions=["GET"])
            ))  # fmt: skip
            url = f"http://{http.listen}/v2/keys/{other.key.key}"
            await channel.close()

            loop = asyncio.get_running_loop()
            # Warm-up (fills the principal cache), then the measured runs.
            await loop.run_in_executor(
                None, wrk, binary, url, 2, args.connections, account.master_key
            )
            base = await loop.run_in_executor(
                None, wrk, binary, f"http://{bare_listen}/", args.seconds, args.connections
            )
            keys_cpu_before = cpu_seconds(keys.process.pid)
            ours = await loop.run_in_executor(
                None, wrk, binary, url, args.seconds, args.connections, account.master_key
            )
            keys_cpu = cpu_seconds(keys.process.pid) - keys_cpu_before
            # The same adapter with tracing on: spans sampled at 10% and batch-exported.
            traced_http = await start_component(
                "adapters.http", "http-traced", work, "--listen", "127.0.0.1:0", "--keys-address",
                keys.listen, "--rate-limit-key", "10000000", "--rate-limit-ip", "10000000",
                env=TRACING,
            )  # fmt: skip
            traced_url = f"http://{traced_http.listen}/v2/keys/{other.key.key}"
            await loop.run_in_executor(
                None, wrk, binary, traced_url, 2, args.connections, account.master_key
            )
            traced = await loop.run_in_executor(
                None, wrk, binary, traced_url, args.seconds, args.connections, account.master_key
            )
            spans = sum(line.startswith('    "name"') for line in traced_http.stdout_lines)
            await traced_http.stop()
        finally:
            bare.kill()
            await bare.wait()
            await http.stop()
            await keys.stop()

    print(f"GET /v2/keys/{{key}} with {args.connections} connections, {args.seconds} s each (wrk)")

    def line(label: str, r: dict[str, float]) -> str:
        return (f"  {label:<17}: {r['rps']:9.0f} req/s  p50 {r['p50']:6.2f} ms"
                f"  p99 {r['p99']:6.2f} ms  non-2xx {r['non2xx']:.0f}")  # fmt: skip

    print(line("bare aiohttp 204", base))
    print(line("m2x HTTP adapter", ours))
    print(line("m2x, tracing on", traced))
    print(f"  ratio m2x / bare : {ours['rps'] / base['rps']:.2f}")
    print(
        f"  tracing on / off : {traced['rps'] / ours['rps']:.2f} ({spans} spans exported, 10% sampled)"
    )
    print(
        f"  keys service CPU during the run: {keys_cpu:.2f} s (no authentication RPC per request)"
    )
    verdict = "MET" if ours["rps"] >= TARGET_RPS and not ours["non2xx"] else "NOT MET"
    print(f"  target {TARGET_RPS} req/s: {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
