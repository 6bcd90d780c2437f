"""Settings of the keys service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.clickhouse import dsn_problem
from m2x.runtime.settings import one_of, setting


@dataclass(frozen=True, slots=True)
class KeysSettings:
    data_dir: Path = setting(Path("var"), "directory for data (the chDB database lives under it)")
    listen: str = setting("127.0.0.1:0", "gRPC listen address host:port (port 0: any free port)")
    database_dsn: str = setting("", "ClickHouse DSN; default chdb:///<data_dir>/keys", dsn_problem)
    reflection: bool = setting(False, "serve gRPC reflection")
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(3.0, "seconds calls in flight get to finish on shutdown")

    @property
    def dsn(self) -> str:
        return self.database_dsn or f"chdb://{(self.data_dir / 'keys').resolve()}"
