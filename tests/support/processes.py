"""Start real components as OS processes on free ports and wait for their ready line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from m2x.runtime.lifecycle import parse_ready

READY_TIMEOUT = 60.0


@dataclass
class Component:
    name: str
    process: asyncio.subprocess.Process
    listen: str
    stderr_path: Path
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            self._drain.cancel()
        return self.process.returncode or 0

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


async def start_component(module: str, name: str, workdir: Path, *args: str) -> Component:
    """Run `python -m module args...`; return once it printed its ready line."""
    stderr_path = workdir / f"{name}.stderr.log"
    stderr = stderr_path.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    stderr.close()
    assert process.stdout is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                line = await process.stdout.readline()
                if not line:
                    raise RuntimeError(
                        f"{name} exited ({await process.wait()}): {stderr_path.read_text()[-3000:]}"
                    )
                ready = parse_ready(line.decode())
                if ready:
                    break
    except BaseException:
        process.kill()
        await process.wait()
        raise
    component = Component(name, process, ready["listen"], stderr_path)
    component._drain = asyncio.create_task(_drain(process.stdout))
    return component


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def running(components: list[Component]) -> AsyncIterator[list[Component]]:
    try:
        yield components
    finally:
        for component in reversed(components):
            await component.stop()
