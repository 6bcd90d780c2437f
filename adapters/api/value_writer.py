"""Value writes of concurrent requests go to storage together, in WriteValuesBatch calls.

One gRPC call costs the adapter and the storage service far more CPU than the values of a
typical write (one value from a device), so writes that arrive while a call is under way wait
for the next call and share it. A write is sent at once when a call slot is free, so a lone
write waits for nothing; under load, each call carries everything that arrived meanwhile.
Each write still gets its own answer, with the error WriteValues would have given it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.api.rpc import call
from m2x.runtime.errors import DomainError, Unavailable
from m2x.runtime.grpc_status import status_to_domain_error
from m2x.storage.v1 import storage_pb2 as pb

MAX_VALUES_PER_CALL = 50_000  # keeps one call's message at a few MB


def _values(request: pb.WriteValuesRequest) -> int:
    return sum(len(s.timestamps_ms) for s in request.streams) + request.HasField("location")


@dataclass(slots=True)
class _Write:
    request: pb.WriteValuesRequest
    values: int
    answer: asyncio.Future[int]


class ValueWriter:
    def __init__(self, storage: Any, max_calls: int = 2) -> None:
        self.storage = storage
        self.max_calls = max_calls  # batch calls in flight at once
        self._pending: deque[_Write] = deque()
        self._calls = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, request: pb.WriteValuesRequest) -> int:
        """Store one device's values (WriteValues semantics); returns the values stored."""
        loop = asyncio.get_running_loop()
        write = _Write(request, _values(request), loop.create_future())
        self._pending.append(write)
        self._schedule(loop.call_soon)
        return await write.answer

    def _schedule(self, soon: Callable[..., Any]) -> None:
        # Sent on the next loop iteration: writes of the same moment join the same call.
        if self._pending and not self._scheduled and self._calls < self.max_calls:
            self._scheduled = True
            soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        if not self._pending or self._calls >= self.max_calls:
            return
        batch, values = [], 0
        while self._pending and (
            not batch or values + self._pending[0].values <= MAX_VALUES_PER_CALL
        ):
            write = self._pending.popleft()
            batch.append(write)
            values += write.values
        self._calls += 1
        task = asyncio.create_task(self._call(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._schedule(asyncio.get_running_loop().call_soon)

    async def _call(self, batch: list[_Write]) -> None:
        try:
            request = pb.WriteValuesBatchRequest(writes=[w.request for w in batch])
            reply = await call(self.storage.WriteValuesBatch, request)
            if len(reply.results) != len(batch):
                raise DomainError("storage answered a batch of writes incompletely")
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc if isinstance(exc, DomainError) else Unavailable("storage call ended")
            for write in batch:
                if not write.answer.done():
                    write.answer.set_exception(failure)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._calls -= 1
            self._schedule(asyncio.get_running_loop().call_soon)
        for write, result in zip(batch, reply.results, strict=True):
            if write.answer.done():  # the request was cancelled; its write still happened
                continue
            if result.HasField("error"):
                write.answer.set_exception(status_to_domain_error(result.error))
            else:
                write.answer.set_result(result.stored)
