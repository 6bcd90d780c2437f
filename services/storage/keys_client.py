"""The storage service's calls to the keys service (primary device keys)."""

from __future__ import annotations

from typing import TypeVar

import grpc

from m2x.keys.v1 import keys_pb2 as pb
from m2x.keys.v1 import keys_pb2_grpc
from m2x.runtime.errors import Unavailable
from m2x.runtime.grpc_status import to_domain_error

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class KeysClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = keys_pb2_grpc.KeysServiceStub(channel)

    async def _call(
        self, rpc: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req
    ) -> _Resp:
        try:
            return await rpc(request, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise (to_domain_error(exc) or Unavailable("keys service unavailable")) from None

    async def create_device_key(self, account_id: str, device_id: str) -> str:
        request = pb.CreatePrimaryKeyRequest(
            account_id=account_id, kind=pb.KEY_KIND_DEVICE, target_id=device_id
        )
        return (await self._call(self.stub.CreatePrimaryKey, request)).key.key

    async def device_keys(self, account_id: str, device_ids: list[str]) -> dict[str, str]:
        if not device_ids:
            return {}
        request = pb.GetPrimaryKeysRequest(
            account_id=account_id, kind=pb.KEY_KIND_DEVICE, target_ids=device_ids
        )
        return dict((await self._call(self.stub.GetPrimaryKeys, request)).keys)

    async def revoke_device_keys(self, account_id: str, device_id: str) -> None:
        request = pb.RevokeKeysRequest(
            account_id=account_id, kind=pb.KEY_KIND_DEVICE, target_id=device_id
        )
        await self._call(self.stub.RevokeKeys, request)
