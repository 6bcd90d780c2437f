"""Builds the storage service's gRPC server around an opened database."""

from __future__ import annotations

from pathlib import Path

import grpc

from m2x.runtime.clickhouse import Database
from m2x.runtime.grpc_server import GrpcServer, start_grpc_server
from m2x.storage.v1 import storage_pb2, storage_pb2_grpc
from services.storage.commands_feed import CommandsFeed
from services.storage.config import StorageSettings
from services.storage.devices import Devices
from services.storage.exports import Exports
from services.storage.keys_client import KeysClient
from services.storage.locations import Locations
from services.storage.request_log import RequestLog
from services.storage.series import Series
from services.storage.servicer import StorageServicer
from services.storage.state import State
from services.storage.store import EntityStore
from services.storage.streams import Streams
from services.storage.value_feed import ValueFeed

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name


async def build_server(
    settings: StorageSettings, db: Database, keys_channel: grpc.aio.Channel
) -> tuple[GrpcServer, Series, Exports]:
    series = Series(
        db, settings.wal_path, flush_interval=settings.flush_interval,
        flush_rows=settings.flush_rows, max_buffered_rows=settings.max_buffered_rows,
        full_wait=settings.full_wait,
        fsync=settings.wal_fsync,
    )  # fmt: skip
    await series.start()
    state = State(EntityStore(db), series)
    await state.load()
    exports = Exports(
        db, settings.data_dir.resolve() / "exports", series.visible, series.rewritten_any
    )
    await exports.start()
    servicer = StorageServicer(
        state, Devices(state, KeysClient(keys_channel)), Streams(state), Locations(state),
        RequestLog(state.store), exports, ValueFeed(series), commands=CommandsFeed(),
    )  # fmt: skip
    server = await start_grpc_server(
        "storage",
        settings.listen,
        lambda s: storage_pb2_grpc.add_StorageServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        reflection_enabled=settings.reflection,
    )
    return server, series, exports
