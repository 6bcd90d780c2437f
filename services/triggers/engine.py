"""The evaluation loop: stored values in, trigger states and notifications out, durably.

Values are applied in feed (version) order, which is the order storage acknowledged them, so
each stream is evaluated in order. Events go to delivery at once. At most every
`commit_interval`, one INSERT saves the states that changed, the events not delivered yet
(the outbox), marks for outbox events delivered since, and the feed cursor. A crash therefore
resumes from a cursor consistent with the saved states, with every event of the values
before it either delivered or in the outbox; values after it are evaluated again and produce
the same events (at least once). Events delivered before the next commit never touch the
database, which keeps notifications off the INSERT path and the INSERTs small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from m2x.storage.v1 import storage_pb2 as pb
from services.triggers.evaluator import evaluate
from services.triggers.model import Event, State, Trigger, Value
from services.triggers.registry import Registry
from services.triggers.store import Engine as Saved
from services.triggers.store import EngineRow, Store

logger = logging.getLogger(__name__)

CURSOR_EVERY = 1.0  # seconds between cursor-only commits (values that changed nothing)
MAX_INBOX = 100_000  # values received, not yet evaluated, before the feed stops reading


class Engine:
    def __init__(self, store: Store, registry: Registry, saved: Saved,
                 deliver: Callable[[list[Event]], None], commit_interval: float = 0.0
                 ) -> None:  # fmt: skip
        self.store = store
        self.registry = registry
        self.deliver = deliver
        self.cursor = saved.cursor  # the last version evaluated
        self.saved_cursor = saved.cursor
        # States of triggers deleted since they were saved are left behind.
        self.states = {k: v for k, v in saved.states.items() if registry.by_id(k) is not None}
        self._dirty: dict[str, State] = {}
        self._delivered: list[str] = []  # events to drop from the outbox with the next commit
        self._unsaved: dict[str, Event] = {}  # produced, neither delivered nor in the outbox
        self._saving: set[str] = set()  # events of the INSERT under way
        self._inbox: list[Sequence[pb.StoredValue]] = []
        self._queued = 0
        # Set while the inbox has room: the feed waits on it, so a slow evaluator pushes back
        # on the stream (and storage cuts it off and replays later) instead of growing memory.
        self.room = asyncio.Event()
        self.room.set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_commit = time.monotonic()
        # Each commit is an INSERT, i.e. a part for ClickHouse to merge: at most one per
        # interval, whatever the value rate (values meanwhile share the next one).
        self.commit_interval = commit_interval
        self._task: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="trigger-engine")

    async def close(self) -> None:
        """Stop evaluating and save what was evaluated (values not yet applied are replayed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._committing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._committing
        if self._commit_due() is not None:
            await self._commit(self._rows())

    # state
    def state(self, trigger: Trigger) -> State:
        state = self.states.get(trigger.id)
        if state is None or state.revision != trigger.revision:
            state = self.states[trigger.id] = State(trigger.revision)
        return state

    def activated(self, trigger: Trigger) -> bool:
        state = self.states.get(trigger.id)
        return state is not None and state.revision == trigger.revision and state.activated

    def rearm(self, trigger: Trigger, previous: dict[str, Value]) -> None:
        """Start the trigger's evaluation afresh; `previous` seeds `changed` conditions."""
        self.states[trigger.id] = self._dirty[trigger.id] = State(
            trigger.revision, previous=previous
        )
        self._wake.set()

    def drop(self, trigger_id: str) -> None:
        self.states.pop(trigger_id, None)
        self._dirty.pop(trigger_id, None)

    def delivered(self, event_id: str) -> None:
        """The event needs no more attempts: drop it from the outbox with the next commit."""
        if self._unsaved.pop(event_id, None) is None or event_id in self._saving:
            self._delivered.append(event_id)  # its outbox row is written (or being written)
            self._wake.set()

    # feed
    def push(self, values: Sequence[pb.StoredValue]) -> None:
        self._inbox.append(values)
        self._queued += len(values)
        if self._queued >= MAX_INBOX:
            self.room.clear()
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Return once every value pushed so far is evaluated and committed."""
        await self._idle.wait()

    def apply(self, values: Sequence[pb.StoredValue]) -> list[Event]:
        """Evaluate values in order; returns the events to send, marks changed states dirty."""
        events: list[Event] = []
        now = time.time_ns() // 1_000_000
        for v in values:
            for trigger in self.registry.enabled_on(v.account_id, v.device_id, v.stream):
                if v.version <= trigger.since_version:
                    continue  # stored before the trigger was (re)armed
                state = self.state(trigger)
                was = (state.activated, state.last_fired_ms)
                value: Value = v.text if v.WhichOneof("value") == "text" else v.number
                kind = evaluate(trigger, state, v.stream, value, v.timestamp_ms)
                # A replay rebuilds the rest: latest values matter only to multi-stream and
                # `changed` conditions, the last notification's time only to periodic ones.
                if trigger.remembers or (
                    was[0] != state.activated
                    or (trigger.spec.frequency == "periodic" and was[1] != state.last_fired_ms)
                ):
                    self._dirty[trigger.id] = state
                if kind == "fired" or (kind == "reset" and trigger.spec.notify_on_reset):
                    events.append(self._event(trigger, state, v, kind, now))
        if values:
            self.cursor = max(self.cursor, values[-1].version)
        return events

    @staticmethod
    def _event(trigger: Trigger, state: State, v: pb.StoredValue, kind: str, now: int) -> Event:
        values = {s: (latest.value, latest.timestamp_ms) for s, latest in state.latest.items()
                  if s in trigger.streams}  # fmt: skip
        return Event(
            id=f"{trigger.id}:{v.version}:{kind}", kind=kind, trigger_id=trigger.id,
            owner=trigger.owner, device_id=v.device_id, snapshot=trigger.snapshot,
            values=values, timestamp_ms=v.timestamp_ms, created_ms=now,
        )  # fmt: skip

    async def _run(self) -> None:
        """Apply values as they come; commit at most every interval, alongside."""
        while True:
            self._wake.clear()
            if self._inbox:
                batches, self._inbox, self._queued = self._inbox, [], 0
                self.room.set()
                events = self.apply([v for batch in batches for v in batch])
                self._unsaved.update((e.id, e) for e in events)
                if events:
                    self.deliver(events)
            commit = self._committing
            if commit is not None and commit.done():
                commit.result()
                commit = self._committing = None
            due = self._commit_due()
            if commit is None and due is not None and due <= 0:
                self._committing = asyncio.create_task(self._commit(self._rows()))
                self._committing.add_done_callback(lambda _: self._wake.set())
                continue
            if commit is None and due is None and not self._inbox:
                self._idle.set()
            wait = None if commit is not None or due is None else max(due, 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _commit_due(self) -> float | None:
        """Seconds until the next commit is due, or None when there is nothing to save."""
        since = time.monotonic() - self._last_commit
        if self._unsaved or self._dirty or self._delivered:
            return self.commit_interval - since
        if self.cursor > self.saved_cursor:
            return CURSOR_EVERY - since  # only the cursor: a replay would rebuild the rest
        return None

    def _rows(self) -> tuple[list[EngineRow], dict[str, State], list[str], int, int]:
        dirty, events = dict(self._dirty), list(self._unsaved.values())
        delivered = list(self._delivered)
        rows = self.store.engine_rows(dirty, events, delivered, self.cursor)
        self._saving = set(self._unsaved)
        self._last_commit = time.monotonic()
        return rows, dirty, [e.id for e in events], len(delivered), self.cursor

    async def _commit(
        self, saved: tuple[list[EngineRow], dict[str, State], list[str], int, int]
    ) -> None:
        """Write the rows; what they saved is only let go of once the INSERT returned, so a
        commit cut short (shutdown) is redone whole by the final one."""
        rows, dirty, event_ids, delivered, cursor = saved
        delay = 0.1
        while True:
            try:
                await self.store.write_engine(rows)
                break
            except Exception:
                logger.exception("could not save trigger states; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for trigger_id, state in dirty.items():
            if self._dirty.get(trigger_id) is state:
                del self._dirty[trigger_id]
        for event_id in event_ids:
            self._unsaved.pop(event_id, None)
        self._saving = set()
        del self._delivered[:delivered]
        self.saved_cursor = max(self.saved_cursor, cursor)
