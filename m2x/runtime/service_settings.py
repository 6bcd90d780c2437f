"""The settings every gRPC service shares; each service's settings class extends these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from m2x.runtime.clickhouse import dsn_problem
from m2x.runtime.settings import one_of, positive, setting


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    # The service's name: its chDB directory under the data dir and its default database.
    SERVICE: ClassVar[str] = ""

    data_dir: Path = setting(Path("var"), "directory for data (the chDB database lives under it)")
    listen: str = setting("127.0.0.1:0", "gRPC listen address host:port (port 0: any free port)")
    database_dsn: str = setting(
        "", "ClickHouse DSN; default chdb:///<data_dir>/<service>", dsn_problem
    )
    reflection: bool = setting(False, "serve gRPC reflection")
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(
        5.0, "seconds calls in flight get to finish on shutdown", positive
    )

    @property
    def dsn(self) -> str:
        return self.database_dsn or f"chdb://{(self.data_dir / self.SERVICE).resolve()}"
