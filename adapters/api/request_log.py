"""Ships the per-device request log (spec §6) to the storage service in batches.

The log is informational, so it is gathered in memory and sent about twice a second; entries
of the last half second are lost if the adapter dies, which never affects stored data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from m2x.storage.v1 import storage_pb2 as pb

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
MAX_PENDING = 50_000  # beyond this (storage down for long) the oldest entries are dropped

# account id, device id, serial, timestamp (ms), status, method, path
_Entry = tuple[str, str, str, int, int, str, str]


def _request(batch: list[_Entry]) -> pb.AppendRequestLogRequest:
    request = pb.AppendRequestLogRequest()
    add = request.entries.add
    for account_id, device_id, serial, timestamp_ms, status, method, path in batch:
        add(
            account_id=account_id, device_id=device_id, serial=serial, timestamp_ms=timestamp_ms,
            status=status, method=method, path=path.removeprefix("/v2"),
        )  # fmt: skip
    return request


class RequestLogShipper:
    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self._pending: list[_Entry] = []
        self._task: asyncio.Task[None] | None = None

    def record(
        self, account_id: str, params: dict[str, str], status: int, method: str, path: str
    ) -> None:
        # A tuple now, a protobuf message at the next flush: built there straight into the
        # request, each entry is made once instead of once here and copied again there.
        entry = (
            account_id, params.get("device", ""), params.get("serial", ""),
            time.time_ns() // 1_000_000, status, method, path,
        )  # fmt: skip
        self._pending.append(entry)
        if len(self._pending) > MAX_PENDING:
            del self._pending[: len(self._pending) - MAX_PENDING]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="request-log-shipper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self.storage.AppendRequestLog(_request(batch), timeout=5)
        except Exception as exc:  # best effort: keep the entries for the next try
            logger.warning("request log not shipped (%s); will retry", exc)
            self._pending[:0] = batch[-MAX_PENDING:]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()
