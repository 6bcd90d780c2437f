"""Devices and streams and the rules of their fields (spec §3, §7, §22), free of I/O."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m2x.runtime.errors import ValidationFailed

VISIBILITIES = ("public", "private")
STATUSES = ("enabled", "disabled")
STREAM_TYPES = ("numeric", "alphanumeric")
MAX_NAME = 255
MAX_TEXT_VALUE = 5000
_STREAM_NAME = re.compile(r"^[^/\s?#%]{1,128}$")
_SERIAL = re.compile(r"^[^/\s?#%]{1,255}$")
_ID = re.compile(r"^[0-9a-f]{32}$")


def is_id(value: str) -> bool:
    return bool(_ID.match(value))


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    timestamp_ms: int
    name: str = ""
    elevation: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str = ""
    description: str = ""
    visibility: str = ""
    status: str = "enabled"
    serial: str = ""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    base_device: str = ""


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(DeviceSpec))


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    account_id: str
    spec: DeviceSpec
    created_ms: int
    updated_ms: int

    @property
    def public(self) -> bool:
        return self.spec.visibility == "public"

    @property
    def enabled(self) -> bool:
        return self.spec.status != "disabled"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    type: str = "numeric"
    unit_label: str = ""
    unit_symbol: str = ""
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Stream:
    account_id: str
    device_id: str
    name: str
    spec: StreamSpec
    created_ms: int
    updated_ms: int

    @property
    def numeric(self) -> bool:
        return self.spec.type == "numeric"


def validate_device(spec: DeviceSpec) -> DeviceSpec:
    """Every rule of a device's fields at once; returns the spec normalised."""
    errors: dict[str, list[str]] = {}
    name = spec.name.strip()
    if not name:
        errors["name"] = ["not_present"]
    elif len(name) > MAX_NAME:
        errors["name"] = ["not_valid"]
    if len(spec.description) > 10 * MAX_NAME:
        errors["description"] = ["not_valid"]
    if not spec.visibility:
        errors["visibility"] = ["not_present"]
    elif spec.visibility not in VISIBILITIES:
        errors["visibility"] = ["not_valid"]
    if spec.status not in STATUSES:
        errors["status"] = ["not_valid"]
    if spec.serial and not _SERIAL.match(spec.serial):
        errors["serial"] = ["not_valid"]
    tags = tuple(dict.fromkeys(t.strip() for t in spec.tags if t.strip()))
    if any(len(t) > MAX_NAME or "," in t for t in tags):
        errors["tags"] = ["not_valid"]
    if spec.base_device and not is_id(spec.base_device):
        errors["base_device"] = ["not_valid"]
    if errors:
        raise ValidationFailed(errors)
    return dataclasses.replace(spec, name=name, tags=tags)


def validate_stream(name: str, spec: StreamSpec) -> StreamSpec:
    errors: dict[str, list[str]] = {}
    if not _STREAM_NAME.match(name):
        errors["name"] = ["not_valid"]
    if spec.type not in STREAM_TYPES:
        errors["type"] = ["not_valid"]
    if len(spec.unit_label) > MAX_NAME or len(spec.unit_symbol) > MAX_NAME:
        errors["unit"] = ["not_valid"]
    if len(spec.display_name) > MAX_NAME:
        errors["display_name"] = ["not_valid"]
    if errors:
        raise ValidationFailed(errors)
    return spec


def validate_location(location: Location) -> list[str] | None:
    """The code words wrong with a location, or None when it is valid."""
    if not (math.isfinite(location.latitude) and -90 <= location.latitude <= 90):
        return ["not_valid"]
    if not (math.isfinite(location.longitude) and -180 <= location.longitude <= 180):
        return ["not_valid"]
    if location.elevation is not None and not math.isfinite(location.elevation):
        return ["not_valid"]
    if not timestamps_valid([location.timestamp_ms]):
        return ["not_valid"]
    return None


def numeric_values(texts: list[str]) -> np.ndarray | None:
    """Texts sent for a numeric stream as floats, or None when one is not a number."""
    try:
        numbers = np.array([float(t) for t in texts], np.float64)
    except ValueError:
        return None
    return numbers if finite(numbers) else None


def text_values(sent: np.ndarray | list[str]) -> list[str] | None:
    """Values sent (as numbers or texts) for an alphanumeric stream, or None when one is too
    long."""
    values = sent if isinstance(sent, list) else [_number_text(n) for n in sent.tolist()]
    return values if all(len(v) <= MAX_TEXT_VALUE for v in values) else None


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


# What ClickHouse's DateTime64 can hold: 1900-01-01 to 2299-12-31 (UTC).
MIN_TIMESTAMP_MS = -2_208_988_800_000
MAX_TIMESTAMP_MS = 10_413_791_999_999


# Below this many values a Python loop beats numpy's fixed cost per call (~2 µs).
SMALL = 16


def bounds(stamps: Sequence[int] | np.ndarray) -> tuple[int, int]:
    """Smallest and largest of a non-empty sequence of timestamps."""
    if len(stamps) <= SMALL:
        values = stamps.tolist() if isinstance(stamps, np.ndarray) else stamps
        return min(values), max(values)
    stamps = np.asarray(stamps, np.int64)
    return int(stamps.min()), int(stamps.max())


def timestamps_valid(stamps: Sequence[int] | np.ndarray) -> bool:
    if not len(stamps):
        return True
    low, high = bounds(stamps)
    return MIN_TIMESTAMP_MS <= low and high <= MAX_TIMESTAMP_MS


def finite(numbers: Sequence[float] | np.ndarray) -> bool:
    if len(numbers) <= SMALL:
        values = numbers.tolist() if isinstance(numbers, np.ndarray) else numbers
        return all(math.isfinite(n) for n in values)
    return bool(np.isfinite(np.asarray(numbers, np.float64)).all())
