"""Assembles the whole public API: every route group in one table."""

from __future__ import annotations

from adapters.api import (
    devices_routes,
    jobs_routes,
    keys_routes,
    readings_routes,
    system_routes,
    triggers_routes,
)
from adapters.api.api import Api, Limits
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
