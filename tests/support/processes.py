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
    stdout_lines: list[str] = field(default_factory=list)  # what it printed after ready
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            # Read what it printed up to its exit (span batches flushed on shutdown).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 5)
        return self.process.returncode or 0

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


async def start_component(
    module: str, name: str, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Component:
    """Run `python -m module args...`; return once it printed its ready line."""
    stderr_path = workdir / f"{name}.stderr.log"
    stderr = stderr_path.open("ab")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, env=environment,
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
    component._drain = asyncio.create_task(_drain(process.stdout, component.stdout_lines))
    return component


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def running(components: list[Component]) -> AsyncIterator[list[Component]]:
    try:
        yield components
    finally:
        for component in reversed(components):
            await component.stop()
