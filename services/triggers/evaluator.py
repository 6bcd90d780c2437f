"""Evaluating one stored value against one trigger: conditions, reset, timeframe, frequency.

Inferred rules (seed 001 leaves them open; written down here and in docs/triggers.md):
- A fired trigger is reset by a value that reaches its stream's `reset` threshold (`<=` it
  for gt/gte, `>=` it for lt/lte); streams without `reset` reset it with any value outside
  their condition. The value that resets a trigger does not also fire it.
- Multi-stream triggers hold when every stream's latest value met its condition and those
  values' timestamps lie within `timeframe` seconds of each other.
- `periodic` measures its interval between value timestamps (not the wall clock), so a replay
  after downtime notifies as it would have live.
- `changed` compares with the stream's previous value (the stream's latest value when the
  trigger was created counts); with no previous value, `changed: true` holds.
"""

from __future__ import annotations

from typing import Any

from services.triggers.model import Condition, Latest, State, Trigger, Value

_RESET_BELOW = ("gt", "gte")  # these re-arm at or below their reset threshold


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(value: Value, operand: Any) -> bool:
    if isinstance(value, str) or isinstance(operand, str):
        return _text(value) == _text(operand)
    return float(value) == float(operand)


def _compare(op: str, value: Value, operand: float) -> bool:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    if op == "gt":
        return value > operand
    if op == "gte":
        return value >= operand
    if op == "lt":
        return value < operand
    return value <= operand


def holds(condition: Condition, value: Value, previous: Value | None) -> bool:
    """Whether `value` meets every operator of the stream's condition."""
    for op, operand in condition.ops:
        if op == "eq":
            ok = _equal(value, operand)
        elif op == "not":
            ok = not _equal(value, operand)
        elif op == "changed":
            differs = previous is None or not _equal(value, previous)
            ok = differs if operand else not differs
        else:
            ok = _compare(op, value, operand)
        if not ok:
            return False
    return True


def resets(condition: Condition, latest: Latest) -> bool:
    """Whether the stream's latest value re-arms a fired trigger."""
    if condition.reset is None:
        return not latest.holds
    op = condition.ops[0][0]
    value = latest.value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return value <= condition.reset if op in _RESET_BELOW else value >= condition.reset


def _all_hold(trigger: Trigger, state: State) -> bool:
    stamps = []
    for condition in trigger.conditions:
        latest = state.latest.get(condition.stream)
        if latest is None or not latest.holds:
            return False
        stamps.append(latest.timestamp_ms)
    return max(stamps) - min(stamps) <= trigger.spec.timeframe * 1000


def evaluate(trigger: Trigger, state: State, stream: str, value: Value, ts_ms: int) -> str | None:
    """Apply one value of `stream` to `state`; "fired", "reset" or None (nothing to send).

    A reset is returned whatever `notify_on_reset` says; the caller decides to send it.
    """
    condition = next((c for c in trigger.conditions if c.stream == stream), None)
    if condition is None:
        return None
    before = state.latest.get(stream)
    previous = before.value if before is not None else state.previous.get(stream)
    latest = Latest(value, ts_ms, holds(condition, value, previous))
    state.latest[stream] = latest
    if state.activated and resets(condition, latest):
        state.activated = False
        return "reset"
    if not latest.holds or not _all_hold(trigger, state):
        return None
    frequency = trigger.spec.frequency
    if state.activated:
        if frequency == "single":
            return None
        if frequency == "periodic" and ts_ms - state.last_fired_ms < trigger.spec.interval * 1000:
            return None
    state.activated = True
    state.last_fired_ms = ts_ms
    return "fired"
