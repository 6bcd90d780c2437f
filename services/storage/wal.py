"""Write-ahead log of stream values.

A write is acknowledged once its record is appended here; ClickHouse gets the rows later in
large INSERTs (one INSERT costs milliseconds of CPU whatever its size, so many small ones cost
more than the rows themselves). The log is a directory of numbered segment files. Writers
append to the newest; a flush seals it (new writes go to a fresh segment) and, once every row
of the sealed segments is in ClickHouse, retires them (deletes the files). At start the
segments left over are read back: they hold exactly the rows that may not have reached
ClickHouse.

Each record is framed as `length (u32) | crc32 (u32) | msgpack payload`. An append is one
`write(2)` on an O_APPEND file: once it returned the record survives a kill -9 of this process
(the page cache belongs to the kernel). With `fsync` on, appends also wait for fdatasync,
shared by the writers of one moment, which makes them survive a power loss too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_SUFFIX = ".wal"
MAX_RECORD = 1 << 30


class WriteAheadLog:
    def __init__(self, folder: Path, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self._fd = -1
        self._segment = 0  # number of the segment appended to
        self._sealed: list[int] = []  # segments whose rows are not all in ClickHouse yet
        self._appended = 0  # records appended, and of those known to be on disk
        self._synced = 0
        self._syncing: asyncio.Future[None] | None = None  # the fdatasync writers share

    # opening and reading back
    def segments(self) -> list[int]:
        """Numbers of the segment files present, oldest first."""
        return sorted(int(p.stem) for p in self.folder.glob(f"*{_SUFFIX}") if p.stem.isdigit())

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:012d}{_SUFFIX}"

    def open(self) -> list[int]:
        """Create the folder and a fresh segment; returns the segments left over (to replay)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        left = self.segments()
        self._sealed = list(left)
        self._open_segment((left[-1] if left else 0) + 1)
        return left

    def read(self, number: int) -> Iterator[Any]:
        """The records of a segment in order; a torn or corrupt tail ends it (with a warning)."""
        data = self._path(number).read_bytes()
        offset = 0
        while offset < len(data):
            if offset + _FRAME.size > len(data):
                logger.warning("WAL segment %d: torn record header at %d", number, offset)
                return
            length, crc = _FRAME.unpack_from(data, offset)
            start, end = offset + _FRAME.size, offset + _FRAME.size + length
            payload = data[start:end]
            if end > len(data) or zlib.crc32(payload) != crc:
                logger.warning("WAL segment %d: torn or corrupt record at %d", number, offset)
                return
            yield msgpack.unpackb(payload, use_list=True)
            offset = end

    # appending
    def _open_segment(self, number: int) -> None:
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._fd >= 0:
            if self.fsync:  # the next fdatasync covers only the new segment
                os.fdatasync(self._fd)
            os.close(self._fd)
        self._fd, self._segment = fd, number
        if self.fsync:
            self._sync_folder()

    def append(self, *records: Any) -> None:
        """Append records, in one write(2); they survive a crash of this process once this
        returns. A torn tail loses whole records only (each has its own frame and CRC)."""
        if not records:
            return
        frames = []
        for record in records:
            payload = msgpack.packb(record, use_bin_type=True)
            if len(payload) > MAX_RECORD:
                raise ValueError(f"WAL record of {len(payload)} bytes is too large")
            frames.append(_FRAME.pack(len(payload), zlib.crc32(payload)))
            frames.append(payload)
        data = b"".join(frames)
        written = os.write(self._fd, data)
        while written < len(data):  # regular files rarely write short, but they may
            written += os.write(self._fd, data[written:])
        self._appended += 1

    async def synced(self) -> None:
        """With fsync on, wait until every record appended so far is on disk; else return.

        Writers of one moment share an fdatasync: one that arrives while a sync runs waits
        for it and then for the next, which covers its record.
        """
        if not self.fsync:
            return
        target = self._appended
        while self._synced < target:
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync())
            await asyncio.shield(self._syncing)

    async def _sync(self) -> None:
        try:
            upto = self._appended
            await asyncio.get_running_loop().run_in_executor(None, os.fdatasync, self._fd)
            self._synced = max(self._synced, upto)
        finally:
            self._syncing = None

    # sealing and retiring
    def seal(self) -> None:
        """Start a new segment: rows appended so far are in the sealed ones."""
        self._sealed.append(self._segment)
        self._open_segment(self._segment + 1)

    def retire(self) -> None:
        """Every row of the sealed segments is in ClickHouse: delete them."""
        for number in self._sealed:
            self._path(number).unlink(missing_ok=True)
        self._sealed.clear()
        if self.fsync:
            self._sync_folder()

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
