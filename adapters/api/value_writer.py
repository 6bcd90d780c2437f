"""Value writes of concurrent requests go to storage together, in WriteValuesBatch calls.

One gRPC call costs the adapter and the storage service far more CPU than the values of a
typical write (one value from a device), so writes that arrive while a call is under way wait
for the next call and share it. A write is sent at once when a call slot is free, so a lone
write waits for nothing; under load, each call carries everything that arrived meanwhile.
Each write still gets its own answer, with the error WriteValues would have given it.

A write goes straight into the request message of the call that will carry it (one copy of
its values, not one into a WriteValuesRequest and another into the batch).

One call at a time per process by default: under single-value load (bench.adapter_cpu, 2
workers) a second call slot halved the writes per call and cost ~9% more adapter CPU and ~14%
more storage CPU per request, for no better throughput or p99. Bulk writes are the other way
round: a call's fixed cost is small beside its values', and while one call waits, the adapter
and storage take turns idling (storage handles a call while the adapter has parsed everything
its clients sent; then the adapter parses while storage waits). So a batch of at least
`BULK_VALUES` may take a second slot (bench.ingest, 1 worker: ~7% more values/s).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from adapters.api.rpc import call
from m2x.runtime.errors import DomainError, Unavailable
from m2x.runtime.grpc_status import status_to_domain_error
from m2x.storage.v1 import storage_pb2 as pb

MAX_VALUES_PER_CALL = 50_000  # keeps one call's message at a few MB
# From here on a call's fixed cost (~0.3 ms for adapter and storage together) is under a
# fifth of its values' (~3 us each), and sending it sooner pays more than sharing a call.
BULK_VALUES = 500


class _Batch:
    """The request of one future call and the answers its writes wait for, in order."""

    __slots__ = ("answers", "request", "values")

    def __init__(self) -> None:
        self.request = pb.WriteValuesBatchRequest()
        self.answers: list[asyncio.Future[int]] = []
        self.values = 0


class ValueWriter:
    def __init__(self, storage: Any, max_calls: int = 1, bulk_calls: int = 2) -> None:
        self.storage = storage
        self.max_calls = max_calls  # batch calls in flight at once
        self.bulk_calls = max(bulk_calls, max_calls)  # the same when the next one is bulk
        self._pending: deque[_Batch] = deque()  # not sent yet; only the last one takes writes
        self._calls = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(
        self,
        caller: pb.Caller,
        device: pb.DeviceRef,
        values: pb.ValueColumns,
        location: pb.Location | None = None,
    ) -> int:
        """Store one device's values (WriteValues semantics); returns the values stored."""
        count = sum(values.counts) + (location is not None)
        pending = self._pending
        if not pending or (
            pending[-1].answers and pending[-1].values + count > MAX_VALUES_PER_CALL
        ):
            pending.append(_Batch())
        batch = pending[-1]
        batch.request.writes.add(caller=caller, device=device, values=values, location=location)
        batch.values += count
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        batch.answers.append(answer)
        self._schedule(loop.call_soon)
        return await answer

    def _slot_free(self) -> bool:
        if self._calls < self.max_calls:
            return True
        return self._calls < self.bulk_calls and self._pending[0].values >= BULK_VALUES

    def _schedule(self, soon: Callable[..., Any]) -> None:
        # Sent on the next loop iteration: writes of the same moment join the same call.
        if self._pending and not self._scheduled and self._slot_free():
            self._scheduled = True
            soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        if not self._pending or not self._slot_free():
            return
        batch = self._pending.popleft()
        self._calls += 1
        task = asyncio.create_task(self._call(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._schedule(asyncio.get_running_loop().call_soon)

    async def _call(self, batch: _Batch) -> None:
        try:
            reply = await call(self.storage.WriteValuesBatch, batch.request)
            if len(reply.results) != len(batch.answers):
                raise DomainError("storage answered a batch of writes incompletely")
        except (Exception, asyncio.CancelledError) as exc:
            failure = exc if isinstance(exc, DomainError) else Unavailable("storage call ended")
            for answer in batch.answers:
                if not answer.done():
                    answer.set_exception(failure)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._calls -= 1
            self._schedule(asyncio.get_running_loop().call_soon)
        for answer, result in zip(batch.answers, reply.results, strict=True):
            if answer.done():  # the request was cancelled; its write still happened
                continue
            if result.HasField("error"):
                answer.set_exception(status_to_domain_error(result.error))
            else:
                answer.set_result(result.stored)
