"""Builds the keys service's gRPC server around an opened database."""

from __future__ import annotations

from pathlib import Path

from m2x.keys.v1 import keys_pb2, keys_pb2_grpc
from m2x.runtime.clickhouse import Database
from m2x.runtime.grpc_server import GrpcServer, start_grpc_server
from services.keys.changes import ChangeFeed
from services.keys.config import KeysSettings
from services.keys.keyring import KeyRing
from services.keys.servicer import KeysServicer
from services.keys.store import KeyStore

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name


async def build_server(settings: KeysSettings, db: Database) -> tuple[GrpcServer, KeyRing]:
    store = KeyStore(db)
    await store.load()
    ring = KeyRing(store, ChangeFeed())
    server = await start_grpc_server(
        "keys",
        settings.listen,
        lambda s: keys_pb2_grpc.add_KeysServiceServicer_to_server(KeysServicer(ring), s),
        [SERVICE_NAME],
        reflection_enabled=settings.reflection,
    )
    return server, ring
