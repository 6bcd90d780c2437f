"""Every RPC of every service in protos/ is implemented and reachable over real gRPC."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import symbol_database

from m2x.keys.v1 import keys_pb2
from tests.support.stack import Stack

SERVICES = [keys_pb2.DESCRIPTOR.services_by_name["KeysService"]]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.full_name)
async def test_every_rpc_is_implemented(stack: Stack, service) -> None:
    database = symbol_database.Default()
    for method in service.methods:
        request_cls = database.GetSymbol(method.input_type.full_name)
        response_cls = database.GetSymbol(method.output_type.full_name)
        path = f"/{service.full_name}/{method.name}"
        kwargs = dict(
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        try:
            if method.server_streaming:
                call = stack.channel.unary_stream(path, **kwargs)(request_cls(), timeout=2)
                await call.read()  # the first message (or an error) proves it is served
                call.cancel()
            else:
                await stack.channel.unary_unary(path, **kwargs)(request_cls(), timeout=2)
        except grpc.RpcError as exc:
            # An empty request may well be refused, but never as unknown or crashed.
            assert exc.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL), (
                f"{path}: {exc.code()} {exc.details()}"
            )
