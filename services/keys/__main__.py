"""`m2x serve keys`: run the keys service until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

from m2x.runtime.clickhouse import open_database
from m2x.runtime.component import run_component
from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.runtime.lifecycle import announce_ready
from services.keys.config import KeysSettings
from services.keys.server import MIGRATIONS, build_server

logger = logging.getLogger(__name__)


async def serve(settings: KeysSettings) -> None:
    stop = stop_event_on_signals()
    db = await open_database(settings.dsn, "keys", MIGRATIONS)
    try:
        server, ring = await build_server(settings, db)
        host = settings.listen.rsplit(":", 1)[0]
        announce_ready("keys", f"{host}:{server.port}")
        logger.info("keys service listening on %s:%d", host, server.port)
        await stop.wait()
        logger.info("shutting down")
        ring.feed.close()
        await server.stop(settings.shutdown_grace)
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    return run_component("keys", KeysSettings, serve, argv, "M2X keys service (gRPC)")


if __name__ == "__main__":
    raise SystemExit(main())
