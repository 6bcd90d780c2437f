"""The test endpoint's fake values: for each stream, one value its condition accepts."""

from __future__ import annotations

import time

from services.triggers.evaluator import holds
from services.triggers.model import Condition, Event, Trigger, Value, snapshot
from services.triggers.storage_client import StreamInfo


def fake_value(condition: Condition, stream: StreamInfo | None) -> Value:
    """A value meeting every operator of `condition` when one exists (else a best effort)."""
    ops = dict(condition.ops)
    previous = stream.latest if stream is not None else None
    if "eq" in ops:
        return ops["eq"] if isinstance(ops["eq"], str) else float(ops["eq"])
    text = stream is not None and stream.type == "alphanumeric"
    if text:
        candidate: Value = "test"
        for guess in ("test", "test-1", "test-2"):
            if holds(condition, guess, previous):
                return guess
        return candidate
    lo = max([float(ops[o]) for o in ("gt", "gte") if o in ops], default=None)
    hi = min([float(ops[o]) for o in ("lt", "lte") if o in ops], default=None)
    guesses: list[float] = []
    if lo is not None and hi is not None:
        guesses.append((lo + hi) / 2)
    if lo is not None:
        guesses += [lo + 1, lo, lo + 0.5]
    if hi is not None:
        guesses += [hi - 1, hi, hi - 0.5]
    base = float(previous) if isinstance(previous, int | float) else 0.0
    guesses += [base + 1, base, 1.0, 0.0]
    for number in guesses:
        if holds(condition, number, previous):
            return number
    return guesses[0]


def fake_event(trigger: Trigger, device_id: str, streams: dict[str, StreamInfo]) -> Event:
    now = time.time_ns() // 1_000_000
    values = {c.stream: (fake_value(c, streams.get(c.stream)), now) for c in trigger.conditions}
    return Event(
        id=f"{trigger.id}:test:{now}", kind="fired", trigger_id=trigger.id, owner=trigger.owner,
        device_id=device_id, snapshot=snapshot(trigger.spec), values=values, timestamp_ms=now,
        created_ms=now,
    )  # fmt: skip
