"""Fixtures shared by all suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.stack import NO_LIMITS, Stack, start_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Keys service + HTTP adapter, real processes, rate limits out of the way."""
    async with start_stack(tmp_path, *NO_LIMITS) as running:
        yield running


@pytest.fixture
async def limited_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Keys service + HTTP adapter with small rate limits (ip 5, key 8, device writes 3)."""
    limits = ("--rate-limit-ip", "5", "--rate-limit-key", "8", "--rate-limit-device-writes", "3")
    async with start_stack(tmp_path, *limits) as running:
        yield running
