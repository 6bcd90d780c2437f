"""`--workers N`: HTTP adapter processes sharing one port, restarted when one dies."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.support.stack import start_stack
from tests.support.waiting import eventually


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text()


def busy(pid: int) -> int:
    """CPU clock ticks the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


async def statuses(url: str, connections: int) -> list[int]:
    """GET /v2/status over `connections` fresh connections (the kernel spreads them)."""

    async def one() -> int:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/v2/status") as reply:
                return reply.status
        except aiohttp.ClientConnectionError:  # reset: 0, so that a caller can wait it out
            return 0

    return list(await asyncio.gather(*(one() for _ in range(connections))))


async def test_workers_share_the_port_and_come_back(tmp_path: Path) -> None:
    unlimited = ("--rate-limit-ip", "0", "--rate-limit-key", "0", "--rate-limit-device-writes", "0")
    async with start_stack(tmp_path, "--workers", "2", *unlimited) as stack:
        parent = stack.http.process.pid
        (worker,) = children(parent)
        assert "adapters.http" in command_line(worker)

        # Both processes serve: their CPU time grows while many connections come in.
        before = {pid: busy(pid) for pid in (parent, worker)}
        assert await statuses(stack.url, 400) == [200] * 400
        assert all(busy(pid) > before[pid] for pid in (parent, worker)), before

        # Values written through either process are stored once each.
        _, master = await stack.new_account()
        _, device, _ = await stack.request(
            "POST", "/v2/devices", key=master, json={"name": "w", "visibility": "private"}
        )
        base = f"/v2/devices/{device['id']}"
        await stack.request("PUT", f"{base}/streams/t", key=master, json={})

        async def put(n: int) -> int:
            async with aiohttp.ClientSession(headers={"X-M2X-KEY": master}) as session:
                body = {"timestamp": f"2024-01-01T00:00:{n:02d}Z", "value": n}
                async with session.put(f"{stack.url}{base}/streams/t/value", json=body) as reply:
                    return reply.status

        assert await asyncio.gather(*(put(n) for n in range(60))) == [202] * 60
        _, stats, _ = await stack.request("GET", f"{base}/streams/t/stats", key=master)
        assert stats["stats"]["count"] == 60

        # A worker that dies is started again; the port keeps answering meanwhile.
        # Connections the kernel already handed to the killed process are reset with it.
        os.kill(worker, signal.SIGKILL)
        await eventually(lambda: asyncio.sleep(0, alive(worker)), lambda up: not up)
        (replacement,) = await eventually(
            lambda: asyncio.sleep(0, children(parent) - {worker}), lambda found: len(found) == 1
        )
        await eventually(lambda: statuses(stack.url, 20), lambda codes: codes == [200] * 20)
    # Stopping the adapter stops its workers.
    await eventually(lambda: asyncio.sleep(0, alive(replacement)), lambda up: not up)
