"""One component's OS process: spawn, ready line, stderr pass-through, stop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence

from m2x.runtime.lifecycle import parse_ready

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 20
_LINE_LIMIT = 1024 * 1024


class ComponentFailed(Exception):
    """A component exited or stayed silent instead of serving; says why and what it logged."""

    def __init__(self, name: str, reason: str, tail: Sequence[str] = ()) -> None:
        message = f"component {name} {reason}"
        if tail:
            message += "; its last log lines:\n    " + "\n    ".join(tail)
        super().__init__(message)
        self.name = name


def die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook making the child get SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: rely on the supervisor's own clean-up
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the hook ran
            os._exit(1)

    return hook


class Child:
    """A component process; its stdout is scanned for the ready line, its stderr passed on."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self.ready_at: float | None = None
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        self._ready: asyncio.Future[str] = loop.create_future()
        self._pumps: list[asyncio.Task[None]] = []
        self._spawned = asyncio.ensure_future(self._spawn())

    async def _spawn(self) -> None:
        # Its own process group keeps a terminal's Ctrl-C away from the children, so that the
        # supervisor alone decides the order in which they stop.
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout, self._on_stdout)),
            asyncio.create_task(self._pump(self.proc.stderr, self._on_stderr)),
        ]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def uptime(self, now: float) -> float:
        return now - (self.ready_at if self.ready_at is not None else self.started_at)

    async def wait_ready(self, within: float) -> str:
        """The address the component announced, or ComponentFailed if it exits or stays silent."""
        try:
            await asyncio.shield(self._spawned)
        except OSError as exc:
            raise ComponentFailed(self.name, f"could not be started: {exc}") from None
        assert self.proc is not None
        exited = asyncio.ensure_future(self.proc.wait())
        either: set[asyncio.Future[str] | asyncio.Future[int]] = {self._ready, exited}
        try:
            await asyncio.wait(either, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if self._ready.done():
            self.ready_at = asyncio.get_running_loop().time()
            return self._ready.result()
        if self.proc.returncode is None:
            raise ComponentFailed(self.name, f"did not report ready within {within:g} s", self.tail)
        await self._drain(1.0)  # so that the error shows what it logged before dying
        raise ComponentFailed(self.name, f"exited with code {self.proc.returncode}", self.tail)

    async def wait(self) -> int:
        """Wait for the process to end; its exit code."""
        await asyncio.shield(self._spawned)
        assert self.proc is not None
        code = await self.proc.wait()
        await self._drain(1.0)
        return code

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL to its whole process group if it outlives `grace` seconds."""
        try:
            await self._spawned
        except OSError:
            return
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                logger.warning(
                    "%s did not stop within %.1f s; killing it",
                    self.name,
                    grace,
                    extra={"child": self.name, "pid": self.proc.pid},
                )
                self.kill()
                await self.proc.wait()
        await self._drain(1.0)

    def kill(self) -> None:
        """SIGKILL the process group (only while the leader is unreaped, so its id is ours)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def _drain(self, within: float) -> None:
        if not self._pumps:
            return
        # A grandchild holding the pipes open must not keep the supervisor waiting.
        _, pending = await asyncio.wait(self._pumps, timeout=within)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _pump(self, stream: asyncio.StreamReader, handle: Callable[[str], None]) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line beyond the limit was dropped; keep reading
                continue
            if not raw:
                return
            handle(raw.decode(errors="replace").rstrip("\n"))

    def _on_stdout(self, line: str) -> None:
        event = parse_ready(line) if not self._ready.done() else None
        if event is not None:
            self._ready.set_result(str(event["listen"]))
        elif line:
            # Our own stdout carries only the stack's ready line, so anything else goes to logs.
            self._on_stderr(line)

    def _on_stderr(self, line: str) -> None:
        self.tail.append(line)
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
