"""Settings of the triggers service."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from m2x.runtime.service_settings import ServiceSettings
from m2x.runtime.settings import non_negative, positive, setting
from services.triggers.callbacks import DEFAULT_DENY


def _networks(value: tuple[str, ...]) -> str | None:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            return f"{network!r} is not a network (e.g. 10.0.0.0/8 or fd00::/8)"
    return None


@dataclass(frozen=True, slots=True)
class TriggersSettings(ServiceSettings):
    SERVICE: ClassVar[str] = "triggers"

    storage_address: str = setting("127.0.0.1:50052", "address host:port of the storage service")
    database_workers: int = setting(2, "threads (and ClickHouse clients) for queries", positive)
    # Delivery of notifications.
    delivery_concurrency: int = setting(256, "callback requests in flight in all", positive)
    delivery_per_host: int = setting(
        32, "callback requests in flight to one host (so one slow host cannot hold all)", positive
    )
    delivery_timeout: float = setting(10.0, "seconds a callback has to answer", positive)
    retry_for: float = setting(
        3600.0, "seconds after a notification during which failed attempts are retried", positive
    )
    retry_initial: float = setting(1.0, "first back-off after a failed attempt, seconds", positive)
    retry_max: float = setting(300.0, "longest back-off between attempts, seconds", positive)
    callback_allow: tuple[str, ...] = setting(
        (), "networks callbacks may reach (comma list; empty: all but the denied)", _networks
    )
    callback_deny: tuple[str, ...] = setting(
        DEFAULT_DENY, "networks callbacks may not reach (comma list; most specific match wins)",
        _networks,
    )  # fmt: skip
    device_cache_ttl: float = setting(
        5.0, "seconds a device's name, serial, location and units are reused in payloads "
        "(as long again while refreshed in the background)",
        non_negative,
    )  # fmt: skip
    commit_interval: float = setting(
        0.2, "least seconds between two saves of evaluator state (one INSERT each)",
        non_negative,
    )  # fmt: skip
