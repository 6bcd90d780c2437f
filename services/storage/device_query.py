"""Filtering, sorting and paging devices (spec §1.7, §1.8, §3.3, §3.4), over cached devices."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from m2x.runtime.errors import ValidationFailed
from services.storage.model import Device

_EARTH_KM = 6371.0088
_UNIT_KM = {"km": 1.0, "mi": 1.609344, "miles": 1.609344, "m": 0.001}
SORTS = ("created", "last_activity", "name", "serial")


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    q: str = ""
    ids: tuple[str, ...] = ()
    name: str = ""
    description: str = ""
    serials: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    status: str = ""
    visibility: str = ""
    modified_since_ms: int = 0
    unmodified_since_ms: int = 0
    streams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    location: Any = None


LatestValue = Callable[[str, str], Any]  # (device id, stream) -> latest value or None
CurrentLocation = Callable[[str], Any]  # device id -> (lat, lon) or None


def _contains(haystack: str, needle: str) -> bool:
    return needle.lower() in haystack.lower()


def _compare(value: Any, op: str, operand: Any) -> bool:
    if value is None:
        return False
    if op == "match":
        return str(value) == str(operand)
    try:
        left, right = float(value), float(operand)
    except (TypeError, ValueError):
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right,
            "eq": left == right}.get(op, False)  # fmt: skip


def _km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_KM * math.asin(math.sqrt(h))


def _in_polygon(point: tuple[float, float], polygon: list[tuple[float, float]]) -> bool:
    inside, (y, x) = False, point
    for (y1, x1), (y2, x2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def location_predicate(spec: Any) -> Callable[[Any], bool]:
    """A test on a device's (lat, lon) or None, from a search's `location` filter."""
    try:
        if spec == "none":
            return lambda where: where is None
        if "within_circle" in spec:
            circle = spec["within_circle"]
            center = (float(circle["center"]["latitude"]), float(circle["center"]["longitude"]))
            ((unit, amount),) = circle["radius"].items()
            radius_km = float(amount) * _UNIT_KM[unit]
            return lambda where: where is not None and _km_between(center, where) <= radius_km
        if "within_polygon" in spec:
            polygon = [
                (float(p["latitude"]), float(p["longitude"])) for p in spec["within_polygon"]
            ]
            if len(polygon) < 3:
                raise ValueError("a polygon needs 3 points")
            return lambda where: where is not None and _in_polygon(where, polygon)
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    raise ValidationFailed({"location": ["not_valid"]})


def matches(device: Device, f: DeviceFilter, latest: LatestValue) -> bool:
    s = device.spec
    if f.q and not any(_contains(text, f.q) for text in (s.name, s.description, s.serial, *s.tags)):
        return False
    if f.ids and device.id not in f.ids:
        return False
    if f.name and not _contains(s.name, f.name):
        return False
    if f.description and not _contains(s.description, f.description):
        return False
    if f.serials and s.serial not in f.serials:
        return False
    if f.tags and not set(f.tags) <= set(s.tags):
        return False
    if f.status and s.status != f.status:
        return False
    if f.visibility and s.visibility != f.visibility:
        return False
    if f.modified_since_ms and device.updated_ms < f.modified_since_ms:
        return False
    if f.unmodified_since_ms and device.updated_ms >= f.unmodified_since_ms:
        return False
    for stream, ops in f.streams.items():
        if not all(_compare(latest(device.id, stream), op, v) for op, v in ops.items()):
            return False
    for name, ops in f.metadata.items():
        if not all(_compare(s.metadata.get(name), op, v) for op, v in ops.items()):
            return False
    return True


def select(
    devices: Iterable[Device], f: DeviceFilter, latest: LatestValue, where: CurrentLocation,
    activity: Callable[[str], int], sort: str, descending: bool, page: int, limit: int,
) -> tuple[list[Device], int]:  # fmt: skip
    """One page of the matching devices and how many match in all."""
    near = location_predicate(f.location) if f.location is not None else None
    found = [d for d in devices if matches(d, f, latest) and (near is None or near(where(d.id)))]
    key: Callable[[Device], Any] = {
        "name": lambda d: (d.spec.name.lower(), d.created_ms),
        "serial": lambda d: (d.spec.serial, d.created_ms),
        "last_activity": lambda d: (activity(d.id), d.created_ms),
    }.get(sort, lambda d: (d.created_ms, d.id))
    found.sort(key=key, reverse=descending)
    start = (page - 1) * limit
    return found[start : start + limit], len(found)
