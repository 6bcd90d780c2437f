"""Routes that need no key: service status (spec §19) and server time (spec §18)."""

from __future__ import annotations

import time

from adapters.api.context import Call
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from m2x.runtime.timefmt import iso_ms

TEXT = "text/plain"


async def status(c: Call) -> ApiResponse:
    """`{"api": "OK", <service>: "OK" | "DOWN", ...}` for the API and each backend service."""
    body = {"api": "OK"}
    for name, check in c.services.health_checks.items():
        body[name] = "OK" if await check() else "DOWN"
    return ApiResponse(200, body)


async def time_all(c: Call) -> ApiResponse:
    millis = time.time_ns() // 1_000_000
    return ApiResponse(
        200, {"seconds": millis // 1000, "millis": millis, "iso8601": iso_ms(millis)}
    )


async def time_seconds(c: Call) -> ApiResponse:
    return ApiResponse(200, str(time.time_ns() // 1_000_000_000), content_type=TEXT)


async def time_millis(c: Call) -> ApiResponse:
    return ApiResponse(200, str(time.time_ns() // 1_000_000), content_type=TEXT)


async def time_iso8601(c: Call) -> ApiResponse:
    return ApiResponse(200, iso_ms(time.time_ns() // 1_000_000), content_type=TEXT)


def routes() -> RouteTable:
    table = RouteTable()
    table.add("GET", "/v2/status", status, Access.PUBLIC)
    table.add("GET", "/v2/time", time_all, Access.PUBLIC)
    table.add("GET", "/v2/time/seconds", time_seconds, Access.PUBLIC)
    table.add("GET", "/v2/time/millis", time_millis, Access.PUBLIC)
    table.add("GET", "/v2/time/iso8601", time_iso8601, Access.PUBLIC)
    return table
