"""Benchmark: single values written over MQTT, beside a bare responder on the same broker.

Starts keys, storage and the HTTP adapter (for set-up), the broker component (Mosquitto with
the generated configuration) and then, one after the other on that broker: a bare responder
that answers every request 202 without doing anything (same client library and event loop as
the adapter), and the MQTT adapter with rate limits off. Each is driven by one asyncio device
connection keeping 64 requests in flight, each `PUT /v2/devices/{id}/streams/{name}/value`
with its own timestamp, spread over the streams of one device. Prints answered req/s, p50 and
p99 of both and their ratio, and checks that every acknowledged value is stored.

Target (issue 5): at least 3,000 requests/s answered with p99 under 100 ms.
Usage: python bench/mqtt_values.py [--seconds 10] [--inflight 64] [--streams 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.mqtt_support import Load, drive, summary, time_reads, value_writes  # noqa: E402
from bench.support import UNLIMITED, cpu_seconds, percentile, product  # noqa: E402
from tests.support.mqtt import MqttStack, free_port, start_broker  # noqa: E402
from tests.support.processes import start_component  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

TARGET_RPS = 3000
TARGET_P99_MS = 100.0
BASE_MS = 1_600_000_000_000  # 2020-09-13T12:26:40Z
WARM_UP_SECONDS = 2


async def new_device(stack: Stack, master: str, streams: list[str]) -> tuple[str, list[str]]:
    """(primary device key, value paths of its streams) of a fresh device."""
    status, device, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "bench", "visibility": "private"}
    )
    assert status == 201, device
    paths = []
    for stream in streams:
        path = f"/v2/devices/{device['id']}/streams/{stream}"
        status, body, _ = await stack.request("PUT", path, key=master, json={})
        assert status == 201, body
        paths.append(path + "/value")
    return device["key"], paths


async def stored(stack: Stack, master: str, paths: list[str]) -> int:
    total = 0
    for path in paths:
        status, body, _ = await stack.request(
            "GET", path.removesuffix("/value") + "/stats", key=master
        )
        assert status == 200, body
        total += body["stats"]["count"]
    return total


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    streams = [f"s{i}" for i in range(args.streams)]
    env = {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with product(work) as stack:
            port = free_port()
            mqtt = MqttStack(stack, await start_broker(work, port), port, work)
            try:
                _, master = await stack.new_account()
                warm_key, warm_paths = await new_device(stack, master, streams)
                key, paths = await new_device(stack, master, streams)

                bare = await start_component(
                    "bench.mqtt_support", "bare", work, "bare", "--data-dir", str(work),
                    "--broker", mqtt.broker.listen, env=env,
                )  # fmt: skip
                warm_up = value_writes(warm_paths, 0)
                await drive(port, warm_key, warm_up, 202, WARM_UP_SECONDS, args.inflight)
                base = await drive(port, key, value_writes(paths, 0), 202, args.seconds,
                                   args.inflight)  # fmt: skip
                await bare.stop()

                adapter = await mqtt.start_adapter(*UNLIMITED)
                warm_up = value_writes(warm_paths, BASE_MS)
                await drive(port, warm_key, warm_up, 202, WARM_UP_SECONDS, args.inflight)
                pids = {"mqtt": adapter.process.pid, "storage": stack.storage.process.pid,
                        "keys": stack.keys.process.pid}  # fmt: skip
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                ours = await drive(port, key, value_writes(paths, BASE_MS), 202, args.seconds,
                                   args.inflight)  # fmt: skip
                cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
                count = await stored(stack, master, paths)
                # The adapter's own ceiling: a route answered without any service call.
                alone = await drive(port, key, time_reads, 200, args.seconds / 2, args.inflight)
            finally:
                for component in mqtt.adapters:
                    await component.stop()
                await mqtt.broker.stop()
    report(args, load_before, base, ours, alone, count, cpu)


def report(args: argparse.Namespace, load_before: float, base: Load, ours: Load, alone: Load,
           count: int, cpu: dict[str, float]) -> None:  # fmt: skip
    print(
        f"PUT /v2/devices/{{id}}/streams/{{name}}/value over MQTT, one device connection with"
        f" {args.inflight} requests in flight, {args.seconds:g} s each, {args.streams} streams,"
        " a distinct timestamp per request"
    )
    print(f"  ({os.cpu_count()} cores; 1-minute load average before the run: {load_before:.2f})")
    print(summary("bare responder (202)", base))
    print(summary("m2x MQTT adapter", ours))
    print(f"  ratio m2x / bare       : {ours.rps / base.rps:.2f}")
    print(summary("m2x GET /v2/time", alone) + "  (no service call: the adapter's own ceiling)")
    unanswered = ours.sent - ours.answered - sum(ours.other.values())
    print(f"  requests: {ours.sent:,} sent, {ours.answered:,} answered 202,"
          f" {unanswered:,} unanswered")  # fmt: skip
    ok = count == ours.answered and not ours.other
    print(f"  values stored (sum of stats count): {count:,} ->"
          f" {'every acknowledged value present' if ok else 'MISMATCH'}")  # fmt: skip
    print("  CPU during the m2x run: " + ", ".join(
        f"{k} {v:.2f} s ({v / max(ours.answered, 1) * 1e6:.0f} us/request)"
        for k, v in cpu.items()
    ))  # fmt: skip
    met = ours.rps >= TARGET_RPS and percentile(ours.latencies_ms, 0.99) < TARGET_P99_MS
    print(f"  target {TARGET_RPS:,} req/s with p99 < {TARGET_P99_MS:.0f} ms:"
          f" {'met' if met and ok else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
