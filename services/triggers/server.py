"""Builds the triggers service around an opened database: its parts, then the gRPC server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from m2x.runtime.clickhouse import Database
from m2x.runtime.grpc_server import GrpcServer, start_grpc_server
from m2x.triggers.v1 import triggers_pb2, triggers_pb2_grpc
from services.triggers.batcher import Batcher
from services.triggers.callbacks import CallbackClient, NetworkPolicy
from services.triggers.config import TriggersSettings
from services.triggers.delivery import Delivery, RetryPolicy
from services.triggers.engine import Engine
from services.triggers.feed import Feed
from services.triggers.registry import Registry
from services.triggers.servicer import TriggersServicer
from services.triggers.storage_client import StorageClient
from services.triggers.store import LogRow, Store
from services.triggers.triggers import Triggers

MIGRATIONS = Path(__file__).parent / "migrations"
LOG_INTERVAL = 0.5
SERVICE_NAME = triggers_pb2.DESCRIPTOR.services_by_name["TriggersService"].full_name


@contextlib.asynccontextmanager
async def running_server(
    settings: TriggersSettings, db: Database, storage_channel: grpc.aio.Channel
) -> AsyncIterator[GrpcServer]:
    """The serving gRPC server; on exit, evaluation and delivery stop and pending writes land."""
    s = settings
    store = Store(db)
    registry = Registry(store)
    await registry.load()
    saved = await store.load_engine()
    storage = StorageClient(storage_channel, s.device_cache_ttl)
    client = CallbackClient(
        NetworkPolicy(s.callback_allow, s.callback_deny), s.delivery_timeout,
        s.delivery_per_host, s.delivery_concurrency,
    )  # fmt: skip
    # Log entries are written at most every LOG_INTERVAL: fewer, larger parts.
    log: Batcher[LogRow] = Batcher("log", store.append_log, LOG_INTERVAL)
    delivery = Delivery(client, storage, log,
                        RetryPolicy(s.retry_for, s.retry_initial, s.retry_max),
                        s.delivery_concurrency, s.delivery_per_host)  # fmt: skip
    engine = Engine(store, registry, saved, delivery.submit, s.commit_interval)
    delivery.done = engine.delivered
    feed = Feed(storage, registry, engine)
    triggers = Triggers(registry, engine, feed, storage, client, log, store)
    log.start()
    delivery.submit(saved.outbox)  # notifications a previous run did not finish
    engine.start()
    feed.start()
    server = await start_grpc_server(
        "triggers", s.listen,
        lambda g: triggers_pb2_grpc.add_TriggersServiceServicer_to_server(
            TriggersServicer(triggers), g
        ),
        [SERVICE_NAME], reflection_enabled=s.reflection,
    )  # fmt: skip
    try:
        yield server
    finally:
        await server.stop(s.shutdown_grace)
        await feed.close()
        await delivery.close()
        await engine.close()
        await client.close()
        await log.close()
