"""`m2x serve storage`: run the storage service until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

from m2x.runtime.clickhouse import open_database
from m2x.runtime.component import run_component
from m2x.runtime.grpc_client import open_channel
from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.runtime.lifecycle import announce_ready
from services.storage.config import StorageSettings
from services.storage.server import MIGRATIONS, build_server

logger = logging.getLogger(__name__)


async def serve(settings: StorageSettings) -> None:
    stop = stop_event_on_signals()
    db = await open_database(settings.dsn, "storage", MIGRATIONS, workers=settings.database_workers)
    keys_channel = open_channel(settings.keys_address)
    try:
        server, series, exports = await build_server(settings, db, keys_channel)
        host = settings.listen.rsplit(":", 1)[0]
        announce_ready("storage", f"{host}:{server.port}")
        logger.info("storage service listening on %s:%d", host, server.port)
        await stop.wait()
        logger.info("shutting down")
        await server.stop(settings.shutdown_grace)
        await exports.close()
        await series.close()  # flushes writes still gathering
    finally:
        await keys_channel.close()
        db.close()


def main(argv: list[str] | None = None) -> int:
    return run_component("storage", StorageSettings, serve, argv, "M2X storage service (gRPC)")


if __name__ == "__main__":
    raise SystemExit(main())
