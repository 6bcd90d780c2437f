"""The byte layout of value columns on the wire (storage.proto ValueColumns): timestamps as
little-endian int64 milliseconds, numbers as little-endian float64, whatever the machine's
byte order. Adapters pack them, the storage service reads them; both through here."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

STAMP, NUMBER = np.dtype("<i8"), np.dtype("<f8")


def pack_stamps(stamps: Sequence[int] | np.ndarray) -> bytes:
    if isinstance(stamps, np.ndarray):
        return stamps.astype(STAMP, copy=False).tobytes()
    return struct.pack(f"<{len(stamps)}q", *stamps)  # a few values: cheaper than numpy


def pack_numbers(numbers: Sequence[float] | np.ndarray) -> bytes:
    if isinstance(numbers, np.ndarray):
        return numbers.astype(NUMBER, copy=False).tobytes()
    return struct.pack(f"<{len(numbers)}d", *numbers)


def unpack_stamps(data: bytes) -> np.ndarray:
    """int64 milliseconds, without a copy; len(data) must be a multiple of 8."""
    return np.frombuffer(data, STAMP)


def unpack_numbers(data: bytes) -> np.ndarray:
    return np.frombuffer(data, NUMBER)
