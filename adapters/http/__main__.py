"""`m2x serve http`: run the HTTP adapter until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from adapters.api.app import open_api
from adapters.http.app import HttpAdapter
from adapters.http.config import HttpSettings
from adapters.http.workers import Workers
from m2x.runtime.component import run_component
from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.runtime.lifecycle import announce_ready

logger = logging.getLogger(__name__)


async def serve(settings: HttpSettings) -> None:
    stop = stop_event_on_signals()
    async with open_api(settings) as api:
        await _serve(settings, HttpAdapter(settings, api).server(), stop)


async def _serve(settings: HttpSettings, server: web.Server, stop: asyncio.Event) -> None:
    """Serve until `stop`; requests under way get `shutdown_grace` seconds to finish."""
    host, _, port = settings.listen.rpartition(":")
    runner = web.ServerRunner(server, shutdown_timeout=settings.shutdown_grace)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host or "0.0.0.0", int(port), backlog=1024,
                           reuse_address=True, reuse_port=settings.reuse_port or settings.workers > 1)  # fmt: skip
        await site.start()
        bound = runner.addresses[0][1]
        workers = Workers(settings, f"{host}:{bound}")
        await workers.start()
        announce_ready("http", f"{host or '0.0.0.0'}:{bound}")
        logger.info("HTTP adapter listening on %s:%d", host, bound)
        await stop.wait()
        logger.info("shutting down")
        await workers.stop()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    return run_component("http", HttpSettings, serve, argv, "M2X HTTP adapter")


if __name__ == "__main__":
    raise SystemExit(main())
