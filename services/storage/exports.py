"""Asynchronous CSV exports of device values (spec §8.5, §15), run by an in-process worker.

Jobs are rows in ClickHouse; a queued or half-done job survives a restart and is run again.
The CSV goes to a file named by a random token, which is also the download capability.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2x.runtime.clickhouse import Database
from m2x.runtime.errors import NotFound, PermissionDenied, ValidationFailed
from services.storage.access import Caller
from services.storage.model import Device

logger = logging.getLogger(__name__)

STATES = ("queued", "working", "complete", "failed")
CHUNK = 256 * 1024
_COLUMNS = (
    "id", "account_id", "device_id", "state", "error", "result_token", "rows", "streams",
    "start_ms", "end_ms", "row_limit", "created_ms", "started_ms", "finished_ms", "updated_ms",
    "include_location", "version", "is_deleted",
)  # fmt: skip


def _iso(ts: str) -> str:
    """SQL of the column `ts` as M2X writes timestamps: UTC with 3 decimals."""
    return (
        f"concat(formatDateTime({ts}, '%Y-%m-%dT%H:%i:%S', 'UTC'), '.', "
        f"leftPad(toString(toUnixTimestamp64Milli({ts}) % 1000), 3, '0'), 'Z')"
    )


# A value without a location yet has empty location fields, not \N.
_CSV = {"join_use_nulls": 1, "format_csv_null_representation": ""}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    account_id: str
    device_id: str
    streams: tuple[str, ...]
    start_ms: int
    end_ms: int
    row_limit: int
    created_ms: int
    state: str = "queued"
    error: str = ""
    result_token: str = ""
    rows: int = 0
    started_ms: int = 0
    finished_ms: int = 0
    updated_ms: int = 0
    include_location: bool = False


@dataclass(slots=True)
class Exports:
    db: Database
    folder: Path
    # Makes a device's values written so far readable in ClickHouse (Series.visible).
    visible: Callable[[str, str], Awaitable[None]]
    # Whether some of the streams (all the device's if none) need FINAL (Series.rewritten_any).
    rewritten: Callable[[str, str, Sequence[str]], bool]
    jobs: dict[str, Job] = field(default_factory=dict)
    _queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    _worker: asyncio.Task[None] | None = None
    _version: int = 0

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for row in await self.db.query(f"SELECT {', '.join(_COLUMNS[:-2])} FROM jobs FINAL"):
            record = dict(zip(_COLUMNS, row, strict=False))
            record["streams"] = tuple(record["streams"])
            record["include_location"] = bool(record["include_location"])
            job = Job(**record)
            self.jobs[job.id] = job
            if job.state in ("queued", "working"):
                self._queue.put_nowait(job.id)  # interrupted by a restart: run it again
        self._worker = asyncio.create_task(self._work(), name="exports")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _save(self, job: Job) -> Job:
        self._version = max(time.time_ns(), self._version + 1)
        job = dataclasses.replace(job, updated_ms=now_ms())
        row = [getattr(job, c) if c != "streams" else list(job.streams) for c in _COLUMNS[:-2]]
        await self.db.insert("jobs", [(*row, self._version, 0)], _COLUMNS)
        self.jobs[job.id] = job
        return job

    async def create(self, device: Device, streams: list[str], start_ms: int, end_ms: int,
                     limit: int, include_location: bool = False) -> Job:  # fmt: skip
        if limit < 0 or (end_ms and start_ms > end_ms):
            raise ValidationFailed({"limit" if limit < 0 else "start": ["not_valid"]})
        job_id = time.strftime("%Y%m", time.gmtime()) + secrets.token_hex(16)
        job = Job(
            job_id, device.account_id, device.id, tuple(streams), start_ms, end_ms, limit, now_ms(),
            include_location=include_location,
        )  # fmt: skip
        job = await self._save(job)
        self._queue.put_nowait(job.id)
        return job

    def get(self, caller: Caller, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.account_id != caller.account_id:
            raise NotFound("Job", job_id)
        if not caller.master and not (
            caller.key_kind == "device" and caller.device_id == job.device_id
        ):
            raise PermissionDenied("OUT_OF_SCOPE")
        return job

    def list(
        self, caller: Caller, state: str, device_id: str, page: int, limit: int
    ) -> tuple[list[Job], int]:
        if not caller.master:
            raise PermissionDenied("MASTER_KEY_REQUIRED")
        if state and state not in STATES:
            raise ValidationFailed({"state": ["not_valid"]})
        found = [
            j for j in self.jobs.values()
            if j.account_id == caller.account_id and (not state or j.state == state)
            and (not device_id or j.device_id == device_id)
        ]  # fmt: skip
        found.sort(key=lambda j: j.created_ms, reverse=True)
        start = (max(page, 1) - 1) * limit
        return found[start : start + limit], len(found)

    async def read(self, token: str) -> AsyncIterator[bytes]:
        job = next(
            (j for j in self.jobs.values() if j.result_token and j.result_token == token), None
        )
        if job is None or job.state != "complete":
            raise NotFound("Export", token)
        path = self.folder / f"{token}.csv"
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk

    async def _work(self) -> None:
        while True:
            job = self.jobs[await self._queue.get()]
            try:
                job = await self._save(
                    dataclasses.replace(job, state="working", started_ms=now_ms())
                )
                token = secrets.token_hex(16)
                rows = await self._export(job, self.folder / f"{token}.csv")
                await self._save(dataclasses.replace(
                    job, state="complete", result_token=token, rows=rows, finished_ms=now_ms()
                ))  # fmt: skip
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("export %s failed", job.id)
                await self._save(
                    dataclasses.replace(
                        job, state="failed", error=str(exc)[:500], finished_ms=now_ms()
                    )
                )

    async def _export(self, job: Job, path: Path) -> int:
        """Write `timestamp,stream,value` rows, newest first, computed by ClickHouse."""
        await self.visible(job.account_id, job.device_id)
        where = (
            "account_id = {a:String} AND device_id = {d:String}"
            " AND ({all:UInt8} = 1 OR has({streams:Array(String)}, stream))"
            " AND ts >= fromUnixTimestamp64Milli({s:Int64})"
            " AND ({e:Int64} = 0 OR ts <= fromUnixTimestamp64Milli({e:Int64}))"
        )
        limit = f" LIMIT {int(job.row_limit)}" if job.row_limit else ""

        def sql(final: str) -> str:
            values = (
                f"SELECT device_id, ts, stream, toString(value) AS value FROM"
                f" numeric_values{final} WHERE {where} UNION ALL SELECT device_id, ts, stream,"
                f" value FROM text_values{final} WHERE {where}"
            )
            if not job.include_location:
                return f"SELECT {_iso('ts')} AS timestamp, stream, value FROM ({values}) ORDER BY ts DESC, stream{limit}"  # fmt: skip
            # The location of each value: the device's newest waypoint at or before it.
            return (
                f"SELECT {_iso('v.ts')} AS timestamp, stream, value, latitude,"
                f" longitude, elevation FROM ({values}) AS v ASOF LEFT JOIN (SELECT device_id,"
                " ts, latitude, longitude, elevation FROM waypoints FINAL WHERE account_id ="
                " {a:String} AND device_id = {d:String}) AS w ON v.device_id = w.device_id"
                f" AND v.ts >= w.ts ORDER BY v.ts DESC, stream{limit}"
            )

        params: dict[str, Any] = {"a": job.account_id, "d": job.device_id, "all": int(not job.streams),
                                  "streams": list(job.streams), "s": job.start_ms, "e": job.end_ms}  # fmt: skip
        # FINAL (deduplicating rewritten timestamps) only for streams that may need it, and
        # again with it if a write made one so while the export ran.
        key = (job.account_id, job.device_id, job.streams)
        final = self.rewritten(*key)
        partial = path.with_suffix(".part")
        await asyncio.to_thread(partial.unlink, missing_ok=True)  # left by a crash
        await self.db.query_to_file(sql(" FINAL" if final else ""), params, partial, _CSV)
        if not final and self.rewritten(*key):
            await asyncio.to_thread(partial.unlink)
            await self.db.query_to_file(sql(" FINAL"), params, partial, _CSV)
        rows = await asyncio.to_thread(_records, partial)
        await asyncio.to_thread(partial.replace, path)
        return max(rows - 1, 0)  # less the header


def _records(path: Path) -> int:
    """CSV records in the file (a text value may hold line breaks, so lines would not do)."""
    with path.open(newline="", encoding="utf-8") as data:
        return sum(1 for _ in csv.reader(data))
