"""Settings of the storage service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.clickhouse import dsn_problem
from m2x.runtime.settings import non_negative, one_of, positive, setting


@dataclass(frozen=True, slots=True)
class StorageSettings:
    data_dir: Path = setting(Path("var"), "directory for data (the chDB database lives under it)")
    listen: str = setting("127.0.0.1:0", "gRPC listen address host:port (port 0: any free port)")
    database_dsn: str = setting(
        "", "ClickHouse DSN; default chdb:///<data_dir>/storage", dsn_problem
    )
    keys_address: str = setting("127.0.0.1:50051", "address host:port of the keys service")
    # 0 still batches: writes that arrive while an INSERT runs share the next one; a delay only
    # adds latency to writers that wait for their answer (measured: 3x fewer rows/s at 5 ms).
    flush_delay: float = setting(
        0.0, "seconds a write waits for others to share its INSERT", non_negative
    )
    flush_rows: int = setting(50_000, "rows that make an INSERT go at once", positive)
    database_workers: int = setting(4, "threads (and ClickHouse clients) for queries", positive)
    reflection: bool = setting(False, "serve gRPC reflection")
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(
        5.0, "seconds calls in flight get to finish on shutdown", positive
    )

    @property
    def dsn(self) -> str:
        return self.database_dsn or f"chdb://{(self.data_dir / 'storage').resolve()}"
