"""Reading public JSON fields into typed values, collecting M2X validation code words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from m2x.runtime.errors import ValidationFailed
from m2x.runtime.timefmt import parse_iso

MAX_INT32 = 2**31 - 1


class FieldReader:
    """Reads fields of one request body; `done()` raises every problem found at once."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.errors: dict[str, list[str]] = {}

    def has(self, name: str) -> bool:
        return name in self.body

    def fail(self, name: str, code: str) -> None:
        codes = self.errors.setdefault(name, [])
        if code not in codes:  # e.g. 100 bad timestamps of one stream: one not_valid
            codes.append(code)

    def string(self, name: str, default: str = "") -> str:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(name, "not_valid")
            return default
        return str(value)

    def string_list(self, name: str, split_commas: bool = False) -> tuple[str, ...]:
        value = self.body.get(name)
        if value is None:
            return ()
        if isinstance(value, str) and split_commas:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, "not_valid")
            return ()
        return tuple(value)

    def timestamp_ms(self, name: str) -> int:
        """Milliseconds of an ISO 8601 field; 0 when absent or null."""
        value = self.body.get(name)
        if value is None or value == "":
            return 0
        try:
            return parse_iso(value)
        except (TypeError, ValueError):
            self.fail(name, "not_valid")
            return 0

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.body.get(name)
        if value is None:
            return default
        if value not in choices:
            self.fail(name, "not_valid")
            return default
        return str(value)

    def integer(self, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        """An integer field; values above `hi` are clamped (as M2X clamps page sizes)."""
        value = self.body.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (lo is not None and number < lo):
            self.fail(name, "not_valid")
            return default
        if hi is not None:
            return min(number, hi)
        if number > MAX_INT32:  # every integer parameter travels as a 32-bit protobuf field
            self.fail(name, "not_valid")
            return default
        return number

    def number(self, name: str) -> float | None:
        """A numeric field (numeric strings accepted, as embedded clients send them)."""
        value = self.body.get(name)
        if value is None or value == "":
            return None
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != number or number in (float("inf"), float("-inf")):
            self.fail(name, "not_numeric")
            return None
        return number

    def flag(self, name: str) -> bool:
        value = self.body.get(name)
        return value is True or (isinstance(value, str) and value.lower() in ("true", "1", ""))

    def done(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
