"""`m2x up`: the triggers service killed (-9) while values stream in and its callback is down.
After the supervisor restarts it and the callback is back, every value acknowledged with 202
has had its notification delivered: those waiting for delivery at the kill, those not yet
evaluated, and those written while the service was down. Trigger states survive too."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import StartUp, Up, alive
from tests.support.triggers import iso
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, receiver

BATCH = 5  # values per POST
PAUSE = 0.01  # between a writer's requests: a steady stream, not a flood
GROWTH = 250  # values acknowledged before the kill, and again after the restart
WITHIN = 45.0


def triggers_pid(up: Up) -> int:
    pid: int = up.endpoints()["components"]["triggers"]["pid"]
    return pid


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session, self.url, self.headers = session, url, {"X-M2X-KEY": key}

    async def __call__(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        async with self.session.request(
            method, self.url + path, json=body, headers=self.headers
        ) as response:
            return response.status, (await response.json() if response.content_length else {})


async def writer(api: Api, base: str, numbers: itertools.count[int], acked: set[int],
                 stop: asyncio.Event) -> None:  # fmt: skip
    while not stop.is_set():
        batch = [next(numbers) for _ in range(BATCH)]
        body = {"values": [{"timestamp": iso(n / 1000), "value": n} for n in batch]}
        try:
            status, _ = await api("POST", base + "/streams/n/values", body)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status == 202:
            acked.update(batch)
        await asyncio.sleep(PAUSE)


async def test_no_notification_of_an_acknowledged_value_is_lost(
    start_up: StartUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("M2X_HTTP_RATE_LIMIT_KEY", "0")
    monkeypatch.setenv("M2X_HTTP_RATE_LIMIT_DEVICE_WRITES", "0")
    monkeypatch.setenv("M2X_TRIGGERS_RETRY_INITIAL", "0.2")
    monkeypatch.setenv("M2X_TRIGGERS_RETRY_MAX", "0.5")
    up = await start_up(tmp_path / "var")
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session, receiver() as flood, \
            receiver() as single:  # fmt: skip
        api = Api(session, up.url, up.bootstrap()["master_key"])
        status, device = await api("POST", "/v2/devices", {"name": "d", "visibility": "private"})
        assert status == 201
        base = f"/v2/devices/{device['id']}"
        for stream in ("n", "level"):
            assert (await api("PUT", f"{base}/streams/{stream}", {}))[0] == 201
        for name, hook, frequency, conditions in (
            ("every", flood, "continuous", {"n": {"gte": 0}}),
            ("once", single, "single", {"level": {"gt": 10}}),
        ):
            status, _ = await api("POST", base + "/triggers", {
                "name": name, "frequency": frequency, "conditions": conditions,
                "callback_url": hook.url,
            })  # fmt: skip
            assert status == 201
        await post_level(api, base, 11)
        await single.wait_for(1)

        acked: set[int] = set()
        stop, numbers = asyncio.Event(), itertools.count()
        task = asyncio.create_task(writer(api, base, numbers, acked, stop))
        try:
            await eventually(lambda: _grown(acked, 0), bool, WITHIN)
            # The callback goes down first: what is produced now waits in the outbox, so the
            # kill finds undelivered notifications as well as values not yet evaluated.
            await flood.down()
            at_down = len(acked)
            await eventually(lambda: _grown(acked, at_down), bool, WITHIN)
            victim = triggers_pid(up)
            os.kill(victim, signal.SIGKILL)
            at_kill = len(acked)
            await eventually(lambda: _replaced(up, victim), bool, WITHIN)
            at_restart = len(acked)
            await flood.up()
            await eventually(lambda: _grown(acked, at_restart), bool, WITHIN)
        finally:
            stop.set()
            await task
        assert not alive(victim)
        assert at_restart > at_kill, "nothing was written while the triggers service was down"

        await eventually(lambda: _all_arrived(flood, acked), bool, WITHIN)
        # The single trigger was fired before the crash and stays fired: 12 does not notify;
        # 5 re-arms it (no notify_on_reset) and 13 fires it again.
        for level in (12, 5, 13):
            await post_level(api, base, level)
        received = await single.wait_for(2)
        assert [r.body["values"]["level"]["value"] for r in received] == [11, 13]


async def _grown(acked: set[int], since: int) -> bool:
    return len(acked) >= since + GROWTH


async def _replaced(up: Up, victim: int) -> bool:
    pid = triggers_pid(up)
    if pid == victim or not alive(pid):
        return False
    async with aiohttp.ClientSession() as session, session.get(up.url + "/v2/status") as answer:
        return (await answer.json()).get("triggers") == "OK"


async def _all_arrived(hook: Receiver, acked: set[int]) -> bool:
    return acked <= {int(r.body["values"]["n"]["value"]) for r in hook.received}


async def post_level(api: Api, base: str, level: float) -> None:
    status, _ = await api("PUT", base + "/streams/level/value", {"value": level})
    assert status == 202
