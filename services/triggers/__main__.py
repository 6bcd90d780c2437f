"""`m2x serve triggers`: run the triggers service until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

from m2x.runtime.clickhouse import open_database
from m2x.runtime.component import run_component
from m2x.runtime.grpc_client import open_channel
from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.runtime.lifecycle import announce_ready
from services.triggers.config import TriggersSettings
from services.triggers.server import MIGRATIONS, running_server

logger = logging.getLogger(__name__)


async def serve(settings: TriggersSettings) -> None:
    stop = stop_event_on_signals()
    db = await open_database(
        settings.dsn, "triggers", MIGRATIONS, workers=settings.database_workers
    )
    storage_channel = open_channel(settings.storage_address)
    try:
        async with running_server(settings, db, storage_channel) as server:
            host = settings.listen.rsplit(":", 1)[0]
            announce_ready("triggers", f"{host}:{server.port}")
            logger.info("triggers service listening on %s:%d", host, server.port)
            await stop.wait()
            logger.info("shutting down")
    finally:
        await storage_channel.close()
        db.close()


def main(argv: list[str] | None = None) -> int:
    return run_component("triggers", TriggersSettings, serve, argv, "M2X triggers service (gRPC)")


if __name__ == "__main__":
    raise SystemExit(main())
