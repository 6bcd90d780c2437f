"""Assembles the whole public API: every route group in one table."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from adapters.api import (
    devices_routes,
    jobs_routes,
    keys_routes,
    readings_routes,
    system_routes,
    triggers_routes,
)
from adapters.api.api import Api, Limits
from adapters.api.backends import open_services
from adapters.api.context import Services
from adapters.api.routes import RouteTable


def all_routes() -> RouteTable:
    table = RouteTable()
    for group in (system_routes, keys_routes, devices_routes, readings_routes, jobs_routes,
                  triggers_routes):  # fmt: skip
        table.include(group.routes())
    return table


def build_api(services: Services, limits: Limits, routes: RouteTable | None = None) -> Api:
    return Api(routes or all_routes(), services, limits)


class AdapterSettings(Protocol):
    """What every adapter's settings say about the services behind it (HTTP, MQTT)."""

    @property
    def keys_address(self) -> str: ...
    @property
    def storage_address(self) -> str: ...
    @property
    def triggers_address(self) -> str: ...
    @property
    def rpc_timeout(self) -> float: ...
    @property
    def principal_ttl(self) -> float: ...
    @property
    def rate_limit_ip(self) -> int: ...
    @property
    def rate_limit_key(self) -> int: ...
    @property
    def rate_limit_device_writes(self) -> int: ...


@contextlib.asynccontextmanager
async def open_api(settings: AdapterSettings) -> AsyncIterator[Api]:
    """The whole API over the services `settings` name, open while inside (`api.services`)."""
    async with open_services(
        settings.keys_address, settings.storage_address, settings.rpc_timeout,
        settings.principal_ttl, triggers_address=settings.triggers_address,
    ) as services:  # fmt: skip
        limits = Limits(
            settings.rate_limit_ip, settings.rate_limit_key, settings.rate_limit_device_writes
        )
        yield build_api(services, limits)
