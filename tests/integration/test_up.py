"""`m2x up` end to end: bootstrap, supervision, restarts with data kept, clean stop, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from m2x.runtime.lifecycle import parse_ready
from tests.integration.conftest import StartUp, Up, alive, processes_mentioning

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """Poll `check` until it returns something other than None (or raises no more)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            result = await check()
        except (aiohttp.ClientError, OSError, AssertionError):
            result = None
            if asyncio.get_running_loop().time() >= deadline:
                raise
        if result is not None:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"no success within {within} s"
        await asyncio.sleep(0.1)


async def request(
    method: str, url: str, key: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"X-M2X-KEY": key} if key else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.request(method, url, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def run_m2x(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one `m2x` command."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2x.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def child_pids(up: Up) -> dict[str, int]:
    return {name: entry["pid"] for name, entry in up.endpoints()["components"].items()}


async def test_up_bootstraps_an_account_and_serves_it(start_up: StartUp, tmp_path: Path) -> None:
    up = await start_up(tmp_path / "var")
    boot = up.bootstrap()
    assert set(boot) == {"account_id", "master_key", "http_url", "mqtt_url"}
    assert mode(up.data_dir / "bootstrap.json") == 0o600
    assert mode(up.data_dir / "run" / "endpoints.json") == 0o600
    assert boot["http_url"] == up.url and up.url.startswith("http://127.0.0.1:")
    assert boot["mqtt_url"].startswith("mqtt://127.0.0.1:")
    assert set(child_pids(up)) >= {"keys", "http"}

    status, _ = await request("GET", f"{up.url}/v2/status")
    assert status == 200
    status, body = await request("GET", f"{up.url}/v2/keys", boot["master_key"])
    assert status == 200
    assert boot["master_key"] in [key["key"] for key in body["keys"]]


async def test_sigterm_stops_every_process(start_up: StartUp, tmp_path: Path) -> None:
    up = await start_up(tmp_path / "var")
    pids = child_pids(up)

    assert await up.stop(signal.SIGTERM, within=10.0) == 0

    for name, pid in pids.items():
        assert not alive(pid), f"{name} (pid {pid}) survived"
    assert processes_mentioning(str(up.data_dir)) == []
    assert not (up.data_dir / "run" / "endpoints.json").exists()


async def test_children_die_with_a_killed_supervisor(start_up: StartUp, tmp_path: Path) -> None:
    up = await start_up(tmp_path / "var")
    pids = child_pids(up)

    await up.stop(signal.SIGKILL)

    async def all_gone() -> bool | None:
        return True if not any(alive(pid) for pid in pids.values()) else None

    await eventually(all_gone, within=10.0)


async def test_restart_keeps_the_account_and_its_keys(start_up: StartUp, tmp_path: Path) -> None:
    first = await start_up(tmp_path / "var")
    boot = first.bootstrap()
    status, created = await request(
        "POST", f"{first.url}/v2/keys", boot["master_key"], {"name": "k1", "permissions": ["GET"]}
    )
    assert status == 201, created
    assert await first.stop() == 0

    second = await start_up(tmp_path / "var")
    again = second.bootstrap()
    assert (again["account_id"], again["master_key"]) == (boot["account_id"], boot["master_key"])
    assert mode(second.data_dir / "bootstrap.json") == 0o600
    status, body = await request(
        "GET", f"{second.url}/v2/keys/{created['key']}", again["master_key"]
    )
    assert status == 200, body
    assert body["name"] == "k1"


async def test_killed_service_is_restarted_on_its_address(
    start_up: StartUp, tmp_path: Path
) -> None:
    up = await start_up(tmp_path / "var")
    key = up.bootstrap()["master_key"]
    before = up.endpoints()["components"]["keys"]

    os.kill(before["pid"], signal.SIGKILL)

    async def restarted() -> dict[str, Any] | None:
        entry = up.endpoints()["components"]["keys"]
        return entry if entry["pid"] != before["pid"] else None

    after = await eventually(restarted)
    assert after["address"] == before["address"]

    async def keys_listed() -> int | None:
        status, _ = await request("GET", f"{up.url}/v2/keys", key)
        return status if status == 200 else None

    assert await eventually(keys_listed) == 200
    assert '"exit_code":-9' in up.logs().replace(" ", "")


async def test_accounts_create_adds_an_account(start_up: StartUp, tmp_path: Path) -> None:
    up = await start_up(tmp_path / "var")
    boot = up.bootstrap()

    code, out, err = await run_m2x("accounts", "create", "--name", "other", "--data-dir",
                                   str(up.data_dir))  # fmt: skip
    assert code == 0, err
    other = json.loads(out)
    assert set(other) == {"account_id", "master_key"}
    assert other["account_id"] != boot["account_id"]
    assert other["master_key"] != boot["master_key"]
    status, body = await request("GET", f"{up.url}/v2/keys", other["master_key"])
    assert status == 200
    assert [key["key"] for key in body["keys"]] == [other["master_key"]]


async def test_accounts_create_needs_a_running_stack(tmp_path: Path) -> None:
    code, out, err = await run_m2x("accounts", "create", "--name", "x", "--data-dir",
                                   str(tmp_path / "var"))  # fmt: skip
    assert code != 0 and out == ""
    assert "not running" in err


async def test_second_up_on_the_same_data_dir_fails(start_up: StartUp, tmp_path: Path) -> None:
    up = await start_up(tmp_path / "var")

    code, out, err = await run_m2x("up", "--data-dir", str(up.data_dir), "--http-port", "0",
                                   "--mqtt-port", "0")  # fmt: skip

    assert code != 0
    assert "already running" in err and str(up.data_dir) in err
    assert "ready" not in out
    status, _ = await request("GET", f"{up.url}/v2/status")
    assert status == 200


async def test_bad_settings_are_named(tmp_path: Path) -> None:
    code, _, err = await run_m2x("up", "--data-dir", str(tmp_path), "--http-port", "70000")
    assert code == 2
    assert "--http-port='70000'" in err


async def test_serve_runs_one_component(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2x.cli.main", "serve", "keys",
        "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            ready = parse_ready((await process.stdout.readline()).decode())
        assert ready is not None and ready["component"] == "keys"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
