"""Settings of the HTTP adapter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.settings import non_negative, one_of, positive, setting


@dataclass(frozen=True, slots=True)
class HttpSettings:
    data_dir: Path = setting(Path("var"), "data directory (unused by this stateless adapter)")
    listen: str = setting("0.0.0.0:8080", "HTTP listen address host:port (port 0: any free port)")
    keys_address: str = setting("127.0.0.1:50051", "address host:port of the keys service")
    storage_address: str = setting("127.0.0.1:50052", "address host:port of the storage service")
    triggers_address: str = setting("127.0.0.1:50053", "address host:port of the triggers service")
    public_url: str = setting("", "public base URL for absolute links; default: the request's host")
    trust_forwarded: bool = setting(False, "take scheme, host and client IP from X-Forwarded-*")
    max_body_bytes: int = setting(2 * 1024 * 1024, "largest request body accepted", positive)
    rate_limit_ip: int = setting(30, "unauthenticated requests/s per IP (0: off)", non_negative)
    rate_limit_key: int = setting(50, "requests/s per API key (0: off)", non_negative)
    rate_limit_device_writes: int = setting(10, "writes/s per device (0: off)", non_negative)
    principal_ttl: float = setting(300.0, "seconds a cached principal is trusted", positive)
    rpc_timeout: float = setting(5.0, "deadline of calls to services, seconds", positive)
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(3.0, "seconds requests in flight get on shutdown", positive)
    # aiohttp serves from one core; more processes on the same port use the others.
    workers: int = setting(1, "HTTP adapter processes serving the port (SO_REUSEPORT)", positive)
    reuse_port: bool = setting(False, "bind with SO_REUSEPORT (set for every worker process)")
