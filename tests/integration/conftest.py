"""Fixtures of the whole-stack tests: `m2x up` as a real process on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.mqtt import MqttStack, start_mqtt_stack

READY_TIMEOUT = 90.0


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@dataclass
class Up:
    """A running `m2x up`: its process, data directory, ready line and log file."""

    process: asyncio.subprocess.Process
    data_dir: Path
    log_path: Path
    ready_line: str

    @property
    def url(self) -> str:
        match = re.search(r"https?://\S+", self.ready_line)
        assert match, self.ready_line
        return match.group(0)

    def bootstrap(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "bootstrap.json").read_text())

    def endpoints(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "run" / "endpoints.json").read_text())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Send `sig`; the exit code, which must come within `within` seconds."""
        self.process.send_signal(sig)
        async with asyncio.timeout(within):
            return await self.process.wait()

    async def kill(self) -> None:
        """Leave nothing behind, whatever state the test left the stack in."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        # Children run in their own process groups; their command lines name the data dir.
        for pid in processes_mentioning(str(self.data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _spawn_up(data_dir: Path, log_path: Path, args: tuple[str, ...]) -> Up:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m2x.cli.main", "up", "--data-dir", str(data_dir), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            cwd=data_dir.parent, start_new_session=True,
        )  # fmt: skip
    up = Up(process, data_dir, log_path, "")
    assert process.stdout is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while "ready" not in up.ready_line:
                line = await process.stdout.readline()
                if not line:
                    code = await process.wait()
                    raise AssertionError(f"m2x up exited with {code}:\n{up.logs()[-4000:]}")
                up.ready_line = line.decode()
    except BaseException:
        await up.kill()
        raise
    return up


StartUp = Callable[..., Awaitable[Up]]


@pytest.fixture
async def start_up(tmp_path: Path) -> AsyncIterator[StartUp]:
    """`await start_up(data_dir, *flags)` runs `m2x up` with every port free (0) unless given,
    returns once it printed its ready line, and is killed with all its children at teardown."""
    started: list[Up] = []

    async def start(data_dir: Path, *args: str) -> Up:
        ports = [] if "--http-port" in args else ["--http-port", "0"]
        ports += [] if "--mqtt-port" in args else ["--mqtt-port", "0"]
        up = await _spawn_up(data_dir, tmp_path / f"up-{len(started)}.log", (*ports, *args))
        started.append(up)
        return up

    try:
        yield start
    finally:
        for up in started:
            await up.kill()


@pytest_asyncio.fixture(scope="module")
async def mqtt(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MqttStack]:
    """Keys, storage, triggers, HTTP, a generated Mosquitto and the MQTT adapter, shared by a
    module's tests (like `stack`): each test works with devices of its own accounts."""
    async with start_mqtt_stack(tmp_path_factory.mktemp("mqtt")) as running:
        yield running
