"""Waiting for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool],
                     within: float = 10.0, interval: float = 0.05) -> T:  # fmt: skip
    """Call `probe` until `check` accepts its result; fail with the last result on timeout."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last result: {result!r}")
        await asyncio.sleep(interval)
