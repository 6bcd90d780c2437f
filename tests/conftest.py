"""Fixtures shared by all suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.stack import NO_LIMITS, Stack, start_stack


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Keys, storage, triggers and the HTTP adapter as real processes, rate limits out of the
    way. Starting them takes seconds, so a module's tests share one stack: each test works in
    accounts of its own (`stack.new_account`), which nothing of another account can reach."""
    async with start_stack(tmp_path_factory.mktemp("stack"), *NO_LIMITS) as running:
        yield running


@pytest.fixture
async def fresh_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack of the test's own, for tests that look across accounts (the public catalog)."""
    async with start_stack(tmp_path, *NO_LIMITS) as running:
        yield running


@pytest.fixture
async def limited_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Keys service + HTTP adapter with small rate limits (ip 5, key 8, device writes 3)."""
    limits = ("--rate-limit-ip", "5", "--rate-limit-key", "8", "--rate-limit-device-writes", "3")
    async with start_stack(tmp_path, *limits) as running:
        yield running
