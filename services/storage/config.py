"""Settings of the storage service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from m2x.runtime.service_settings import ServiceSettings
from m2x.runtime.settings import positive, setting


@dataclass(frozen=True, slots=True)
class StorageSettings(ServiceSettings):
    SERVICE: ClassVar[str] = "storage"

    keys_address: str = setting("127.0.0.1:50051", "address host:port of the keys service")
    # A write is answered once it is in the write-ahead log; values reach ClickHouse in large
    # INSERTs (each INSERT costs milliseconds of CPU whatever its size, and makes a part to merge).
    flush_interval: float = setting(
        1.0, "seconds a written value may wait in memory (and the WAL) for its INSERT", positive
    )
    # 500k-row INSERTs cost ClickHouse ~20% less CPU per value than 200k, merges included
    # (fewer, larger parts to merge), for ~150 MiB more memory at the peak.
    flush_rows: int = setting(500_000, "buffered values that make an INSERT go at once", positive)
    max_buffered_rows: int = setting(
        2_000_000, "values buffered or being inserted beyond which writes wait for INSERTs",
        positive,
    )  # fmt: skip
    full_wait: float = setting(
        10.0, "seconds a write waits for room in a full buffer before it is refused (503)", positive
    )
    wal_dir: str = setting("", "write-ahead log directory; default <data_dir>/storage-wal")
    wal_fsync: bool = setting(
        False, "fdatasync the WAL before answering a write (survives power loss, costs latency)"
    )
    database_workers: int = setting(4, "threads (and ClickHouse clients) for queries", positive)

    @property
    def wal_path(self) -> Path:
        return Path(self.wal_dir) if self.wal_dir else self.data_dir / "storage-wal"
