"""`m2x up`: values acknowledged with 202 survive a `kill -9` of the storage service.

Writers post values as fast as they can, each value with its own timestamp and a value equal
to its sequence number; the storage process is killed mid-stream and restarted by the
supervisor; every value that got a 202 must then be readable, unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import StartUp, Up, alive

BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z; value n is stamped BASE_MS + n ms
WRITERS = 4
BATCH = 5  # values per POST /values; every other request is a single PUT /value
BEFORE_KILL = 1.5  # seconds of writing before the kill
MIN_WRITING = 5.0  # seconds of writing in all, at least
RESTART_WITHIN = 45.0
READ_PAGE = 10_000  # the most values one read returns
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def iso(ms: int) -> str:
    return (EPOCH + ms * MS).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // MS


@dataclass
class Tally:
    """What the writers saw: acknowledged sequence numbers and every other outcome."""

    acked: set[int] = field(default_factory=set)
    acked_after_restart: set[int] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    restarted: bool = False

    def fail(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1


async def writer(
    session: aiohttp.ClientSession, stream_url: str, key: str, numbers: itertools.count[int],
    tally: Tally, stop: asyncio.Event, single: bool,
) -> None:  # fmt: skip
    headers = {"X-M2X-KEY": key}
    while not stop.is_set():
        batch = [next(numbers) for _ in range(1 if single else BATCH)]
        values = [{"timestamp": iso(BASE_MS + n), "value": n} for n in batch]
        if single:
            method, url, body = "PUT", stream_url + "/value", values[0]
        else:
            method, url, body = "POST", stream_url + "/values", {"values": values}
        restarted = tally.restarted  # as of sending: an ack counts as "after" only if sent after
        try:
            async with session.request(method, url, json=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.fail(type(exc).__name__)
            await asyncio.sleep(0.01)  # the adapter itself is fine; do not spin on a dead socket
        else:
            if status == 202:
                tally.acked.update(batch)
                if restarted:
                    tally.acked_after_restart.update(batch)
            else:
                tally.fail(str(status))
                await asyncio.sleep(0.01)
        single = not single


async def read_all(session: aiohttp.ClientSession, stream_url: str, key: str) -> dict[int, float]:
    """Every stored value of the stream, timestamp ms -> value, in pages of READ_PAGE."""
    stored: dict[int, float] = {}
    start = BASE_MS
    while True:
        params = {"start": iso(start), "dir": "asc", "limit": str(READ_PAGE)}
        async with session.get(stream_url + "/values", params=params,
                               headers={"X-M2X-KEY": key}) as response:  # fmt: skip
            assert response.status == 200, await response.text()
            values = (await response.json())["values"]
        for entry in values:
            stored[to_ms(entry["timestamp"])] = entry["value"]
        if len(values) < READ_PAGE:
            return stored
        start = max(stored) + 1


def storage_pid(up: Up) -> int:
    pid: int = up.endpoints()["components"]["storage"]["pid"]
    return pid


async def until(check: Any, within: float, what: str) -> Any:
    """Poll the coroutine function `check` until it returns something truthy."""
    try:
        async with asyncio.timeout(within):
            while True:
                if result := await check():
                    return result
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} within {within} s") from None


async def test_acknowledged_values_survive_a_storage_crash(
    start_up: StartUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rate limits would keep the writers far below what the storage service takes.
    monkeypatch.setenv("M2X_HTTP_RATE_LIMIT_KEY", "0")
    monkeypatch.setenv("M2X_HTTP_RATE_LIMIT_DEVICE_WRITES", "0")
    up = await start_up(tmp_path / "var")
    master = up.bootstrap()["master_key"]
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = {"X-M2X-KEY": master}
        device_spec = {"name": "crash", "visibility": "private"}
        async with session.post(
            f"{up.url}/v2/devices", headers=headers, json=device_spec
        ) as response:
            assert response.status == 201, await response.text()
            device = await response.json()
        stream_url = f"{up.url}/v2/devices/{device['id']}/streams/load"
        async with session.put(stream_url, headers=headers, json={}) as response:
            assert response.status == 201, await response.text()

        tally, stop, numbers = Tally(), asyncio.Event(), itertools.count()
        loop = asyncio.get_running_loop()
        began = loop.time()
        tasks = [
            asyncio.create_task(
                writer(session, stream_url, device["key"], numbers, tally, stop, i % 2 == 0)
            )
            for i in range(WRITERS)
        ]
        try:
            await asyncio.sleep(BEFORE_KILL)
            acked_before_kill = len(tally.acked)
            victim = storage_pid(up)
            os.kill(victim, signal.SIGKILL)

            async def replaced() -> int | None:
                pid = storage_pid(up)
                return pid if pid != victim and alive(pid) else None

            await until(replaced, RESTART_WITHIN, "the supervisor did not restart storage")
            tally.restarted = True

            async def written_again() -> bool:
                return len(tally.acked_after_restart) >= 50

            await until(written_again, RESTART_WITHIN, "no write succeeded after the restart")
            await asyncio.sleep(max(0.0, began + MIN_WRITING - loop.time()))
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        assert acked_before_kill > 0
        # Storage is down for at least the supervisor's restart delay: writes failed meanwhile.
        assert tally.failures, "no write failed: the kill missed the stream of writes"
        assert not alive(victim)
        stored = await read_all(session, stream_url, master)

    acked = sorted(tally.acked)
    missing = [n for n in acked if BASE_MS + n not in stored]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged values lost, e.g. {missing[:10]};"
        f" failures while writing: {tally.failures}"
    )
    changed = [n for n in acked if stored[BASE_MS + n] != float(n)]
    assert not changed, f"values changed: {changed[:10]}"
    # Nothing was stored that no writer sent.
    assert all(0 <= ms - BASE_MS < next(numbers) for ms in stored)
    assert '"exit_code":-9' in up.logs().replace(" ", "")
