"""Reading trigger requests (spec §10, seed 001): required fields, defaults and code words.

Inferred choices, where the seed is silent or contradicts itself:
- PUT applies the fields it carries and keeps the others (clients toggle `status` alone); a
  required field sent empty or null is `not_present`. The seed's "if omitted, defaults to..."
  lines under Update are read as the create defaults.
- A missing `frequency` on create is `not_present` (the seed marks it required).
- `gt gte lt lte` need a numeric stream and a numeric operand; `eq` and `not` also work on
  alphanumeric streams (the Operators section allows it); `changed` takes true or false.
- `reset` is accepted only beside exactly one of `gt gte lt lte`.
- `interval` is kept only for periodic triggers; `timeframe`, `interval` must be whole
  seconds; numeric strings count as numbers (embedded clients send them).
- `custom_data` must be a string; `send_location`/`notify_on_reset` booleans (or "true"/"false").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from m2x.runtime.errors import ValidationFailed
from services.triggers.model import FREQUENCIES, NUMERIC_OPS, OPS, STATUSES, Spec

MAX_SECONDS = 86_400
MAX_CUSTOM_DATA = 5_000
NUMERIC = "numeric"

_MISSING = object()
_T = TypeVar("_T")


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _operand(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def callback_url(value: Any) -> str | None:
    """The URL normalised as M2X shows it (`http://example.com/`), or None when not valid."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit(parts._replace(scheme=parts.scheme.lower(), path=parts.path or "/"))


def _condition(ops: Any, kind: str | None) -> bool:
    """Whether one stream's operators are valid for a stream of `kind` (None: not checked)."""
    if not isinstance(ops, Mapping) or not ops or not set(ops) <= {*OPS, "reset"}:
        return False
    named = [op for op in ops if op != "reset"]
    if not named:
        return False
    for op in named:
        operand = ops[op]
        if op == "changed":
            if not isinstance(operand, bool):
                return False
        elif op in NUMERIC_OPS or kind == NUMERIC:
            if not _operand(operand) or (op in NUMERIC_OPS and kind not in (None, NUMERIC)):
                return False
        elif not (isinstance(operand, str) or _operand(operand)):
            return False
    if "reset" in ops:
        return len(named) == 1 and named[0] in NUMERIC_OPS and _operand(ops["reset"])
    return True


class _Reader:
    def __init__(self, body: Mapping[str, Any], current: Spec | None) -> None:
        self.body = body
        self.current = current
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, code: str) -> None:
        self.errors.setdefault(name, []).append(code)

    def given(self, name: str) -> Any:
        """The body's value, or _MISSING when an update leaves the field as it is."""
        if name in self.body:
            return self.body[name]
        return _MISSING if self.current is not None else None

    def kept(self, name: str, fallback: _T) -> _T:
        """The current spec's field (an update keeps it), or `fallback` when creating."""
        if self.current is None:
            return fallback
        value: _T = getattr(self.current, name)
        return value

    def name(self) -> str:
        value = self.given("name")
        if value is _MISSING:
            return self.kept("name", "")
        if value is None or value == "":
            self.fail("name", "not_present")
        elif not isinstance(value, str):
            self.fail("name", "not_valid")
        else:
            return value
        return ""

    def conditions(self, streams: Mapping[str, str] | None) -> dict[str, dict[str, Any]]:
        value = self.given("conditions")
        if value is _MISSING:
            return self.kept("conditions", {})
        if value is None or (isinstance(value, Mapping) and not value):
            self.fail("conditions", "not_present")
            return {}
        valid = isinstance(value, Mapping) and all(
            isinstance(stream, str) and stream
            and (streams is None or stream in streams)
            and _condition(ops, streams.get(stream) if streams is not None else None)
            for stream, ops in value.items()
        )  # fmt: skip
        if not valid:
            self.fail("conditions", "not_valid")
            return {}
        return {stream: dict(ops) for stream, ops in value.items()}

    def choice(self, name: str, choices: tuple[str, ...], default: str, required: bool) -> str:
        value = self.given(name)
        if value is _MISSING:
            return self.kept(name, default)
        if value is None:
            if required:
                self.fail(name, "not_present")
            return default
        if value not in choices:
            self.fail(name, "not_valid")
            return default
        return str(value)

    def seconds(self, name: str, lo: int, missing: int | None) -> int:
        """Whole seconds in lo..86400; `missing` None makes an absent value `not_present`."""
        value = self.given(name)
        if value is _MISSING:
            value = self.kept(name, None) or None
        if value is None or value == "":
            if missing is None:
                self.fail(name, "not_present")
                return 0
            return missing
        number = _number(value)
        if number is None:
            self.fail(name, "not_numeric")
        elif not number.is_integer() or not lo <= number <= MAX_SECONDS:
            self.fail(name, "not_valid")
        else:
            return int(number)
        return 0

    def url(self) -> str:
        value = self.given("callback_url")
        if value is _MISSING:
            return self.kept("callback_url", "")
        if value is None or value == "":
            self.fail("callback_url", "not_present")
            return ""
        normalised = callback_url(value)
        if normalised is None:
            self.fail("callback_url", "not_valid")
        return normalised or ""

    def flag(self, name: str, default: bool) -> bool:
        value = self.given(name)
        if value is _MISSING:
            return self.kept(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(name, "not_valid")
        return default

    def custom_data(self) -> str | None:
        value = self.given("custom_data")
        if value is _MISSING:
            return self.kept("custom_data", None)
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_CUSTOM_DATA:
            self.fail("custom_data", "not_valid")
            return None
        return value


def read_spec(
    body: Mapping[str, Any], streams: Mapping[str, str] | None, current: Spec | None = None
) -> Spec:
    """The trigger a create (current None) or update body describes; ValidationFailed else.

    `streams` maps the owner's stream names to their types; None skips checking streams (an
    update that leaves the conditions alone).
    """
    r = _Reader(body, current)
    name = r.name()
    conditions = r.conditions(streams if "conditions" in body or current is None else None)
    frequency = r.choice("frequency", FREQUENCIES, "single", required=current is None)
    interval = r.seconds("interval", 1, None) if frequency == "periodic" else 0
    timeframe = r.seconds("timeframe", 0, 0)
    if timeframe and len(conditions) == 1 and "timeframe" not in r.errors:
        r.fail("timeframe", "not_valid")  # only multi-stream triggers have a timeframe
    spec = Spec(
        name=name, conditions=conditions, frequency=frequency, interval=interval,
        timeframe=timeframe, callback_url=r.url(),
        status=r.choice("status", STATUSES, "enabled", required=False),
        send_location=r.flag("send_location", True),
        notify_on_reset=r.flag("notify_on_reset", False), custom_data=r.custom_data(),
    )  # fmt: skip
    if r.errors:
        raise ValidationFailed(r.errors)
    return spec
