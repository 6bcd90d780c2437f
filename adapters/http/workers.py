"""More HTTP adapter processes on the same port: one aiohttp process serves from one core.

With `workers` above 1 the first process binds its port with SO_REUSEPORT and starts copies of
itself bound to the same port; the kernel spreads incoming connections over all of them. The
copies die with the first process (PDEATHSIG) and are started again when one exits on its own.
Each process has its own principal cache and rate-limit windows, as separate replicas do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys

from adapters.http.config import HttpSettings
from m2x.runtime.lifecycle import parse_ready
from m2x.runtime.settings import settings_flags
from m2x.supervisor.child import die_with_parent

logger = logging.getLogger(__name__)

START_WITHIN = 30.0  # seconds a copy gets to announce it serves
RESTART_DELAY = 1.0


class Workers:
    """The copies of an HTTP adapter process, serving on `listen` beside it."""

    def __init__(self, settings: HttpSettings, listen: str) -> None:
        copy = dataclasses.replace(settings, listen=listen, workers=1, reuse_port=True)
        self.argv = [sys.executable, "-m", "adapters.http", *settings_flags(copy)]
        self.count = settings.workers - 1
        self._processes: list[asyncio.subprocess.Process] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start every copy and wait until each serves (raises if one does not)."""
        self._processes = list(await asyncio.gather(*(self._spawn() for _ in range(self.count))))
        self._watchers = [
            asyncio.create_task(self._watch(n), name=f"http-worker-{n + 1}")
            for n in range(self.count)
        ]

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent()
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_WITHIN):
                while line := await process.stdout.readline():
                    if parse_ready(line.decode(errors="replace")):
                        return process
        except TimeoutError:
            pass
        process.kill()
        await process.wait()
        raise RuntimeError(f"HTTP worker did not start serving (exit code {process.returncode})")

    async def _watch(self, n: int) -> None:
        while True:
            code = await self._processes[n].wait()
            if self._stopping:
                return
            logger.warning("HTTP worker %d exited with %s; starting it again", n + 1, code)
            await asyncio.sleep(RESTART_DELAY)
            with contextlib.suppress(RuntimeError):
                self._processes[n] = await self._spawn()

    async def stop(self) -> None:
        """Stop the copies; each finishes its requests in flight as on SIGTERM."""
        self._stopping = True
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        await asyncio.gather(*(p.wait() for p in self._processes))
        for watcher in self._watchers:
            watcher.cancel()
