"""Delivering notifications: at least once, off the evaluation path, one host never blocking others.

Events arrive here only once they are in the outbox (engine_state), so a crash at any point
re-delivers rather than loses them. Each callback host gets at most `per_host` requests in
flight and all hosts together `concurrency`, so a slow or dead callback holds its own slots
only. A failed attempt (nothing answered, 5xx, 408, 429) is retried with exponential back-off
until `retry_for` seconds after the notification was produced; every attempt is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from m2x.runtime.errors import DomainError
from services.triggers import payload as payloads
from services.triggers.batcher import Batcher
from services.triggers.callbacks import CallbackClient, Outcome
from services.triggers.model import Event
from services.triggers.storage_client import DeviceInfo, StorageClient, StreamInfo
from services.triggers.store import LogRow

logger = logging.getLogger(__name__)


async def build_body(storage: StorageClient, event: Event) -> bytes:
    """The JSON payload of `event`, with the device's current name, serial and location."""
    try:
        device = await storage.device(event.device)
        streams = await storage.cached_streams(event.device)
    except DomainError as exc:
        # The device is gone or storage is down: the notification still goes out.
        logger.warning("device %s unavailable for a notification: %s", event.device_id, exc)
        device, streams = DeviceInfo(event.device_id, "", None, None), dict[str, StreamInfo]()
    return orjson.dumps(payloads.build(event, device, streams))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_for: float  # seconds after an event was produced during which it is retried
    initial: float  # first back-off, doubled after each failure
    ceiling: float  # longest back-off

    def delay(self, attempts: int) -> float:
        return float(min(self.initial * 2 ** max(attempts - 1, 0), self.ceiling))


@dataclass(slots=True)
class _Job:
    event: Event
    host: str
    attempts: int = 0
    body: bytes | None = None  # built on the first attempt, re-sent as is


class Delivery:
    def __init__(self, client: CallbackClient, storage: StorageClient, log: Batcher[LogRow],
                 retry: RetryPolicy, concurrency: int, per_host: int) -> None:  # fmt: skip
        self.client = client
        self.storage = storage
        self.log = log
        # Told of each event that needs no more attempts (the engine drops it from the outbox).
        self.done: Callable[[str], None] = lambda event_id: None
        self.retry = retry
        self.concurrency = concurrency
        self.per_host = per_host
        self._queues: dict[str, deque[_Job]] = {}
        self._active: dict[str, int] = {}
        self._blocked: deque[str] = deque()  # hosts with work waiting for a global slot
        self._running: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.attempts = 0  # counters for metrics and tests
        self.failures = 0

    def submit(self, events: list[Event]) -> None:
        for event in events:
            self._enqueue(_Job(event, urlsplit(event.snapshot["callback_url"]).netloc))

    @property
    def backlog(self) -> int:
        return sum(len(q) for q in self._queues.values()) + len(self._timers)

    def _enqueue(self, job: _Job) -> None:
        self._queues.setdefault(job.host, deque()).append(job)
        self._pump(job.host)

    def _pump(self, host: str) -> None:
        queue = self._queues.get(host)
        while queue and self._active.get(host, 0) < self.per_host:
            if len(self._running) >= self.concurrency:
                if host not in self._blocked:
                    self._blocked.append(host)
                return
            job = queue.popleft()
            self._active[host] = self._active.get(host, 0) + 1
            task = asyncio.create_task(self._attempt(job))
            self._running.add(task)
        if queue is not None and not queue:
            del self._queues[host]

    def _freed(self, host: str) -> None:
        self._active[host] -= 1
        if not self._active[host]:
            del self._active[host]
        self._pump(host)
        for _ in range(len(self._blocked)):
            if len(self._running) >= self.concurrency:
                return
            self._pump(self._blocked.popleft())

    async def _attempt(self, job: _Job) -> None:
        try:
            outcome = await self._send(job)
            self._settle(job, outcome)
        except Exception:
            logger.exception("delivery of %s failed unexpectedly", job.event.id)
            self._settle(job, Outcome(0, error="internal error"))
        finally:
            self._running.discard(asyncio.current_task())
            self._freed(job.host)

    async def _send(self, job: _Job) -> Outcome:
        if job.body is None:
            job.body = await build_body(self.storage, job.event)
        job.attempts += 1
        self.attempts += 1
        outcome = await self.client.post(job.event.snapshot["callback_url"], job.body)
        event = job.event
        self.log.add(LogRow(event.owner, event.trigger_id, time.time_ns() // 1_000_000,
                            job.body, outcome.status))  # fmt: skip
        return outcome

    def _settle(self, job: _Job, outcome: Outcome) -> None:
        if outcome.success or not outcome.retry:
            self.done(job.event.id)
            return
        self.failures += 1
        delay = self.retry.delay(job.attempts)
        deadline = job.event.created_ms / 1000 + self.retry.retry_for
        if time.time() + delay > deadline:
            logger.warning("giving up on notification %s to %s after %d attempts (%s)",
                           job.event.id, job.host, job.attempts,
                           outcome.error or outcome.status)  # fmt: skip
            self.done(job.event.id)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def again() -> None:
            self._timers.discard(handle)
            self._enqueue(job)

        handle = loop.call_later(delay, again)
        self._timers.add(handle)

    async def close(self) -> None:
        """Stop attempting; undelivered events stay in the outbox for the next start."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._queues.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
