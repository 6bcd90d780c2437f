"""KeysService over gRPC: protos in, domain calls, protos out (errors mapped by interceptor)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from m2x.keys.v1 import keys_pb2 as pb
from m2x.keys.v1 import keys_pb2_grpc
from m2x.runtime.grpc_server import StreamContext, UnaryContext
from services.keys.domain import Account, DeviceAccess, Key, Kind, Spec
from services.keys.keyring import KeyRing

_KIND_TO_PB = {
    Kind.MASTER: pb.KEY_KIND_MASTER,
    Kind.DEVICE: pb.KEY_KIND_DEVICE,
    Kind.COLLECTION: pb.KEY_KIND_COLLECTION,
    Kind.DISTRIBUTION: pb.KEY_KIND_DISTRIBUTION,
}
_KIND_FROM_PB = {v: k for k, v in _KIND_TO_PB.items()}
_ACCESS_TO_PB = {
    DeviceAccess.PUBLIC: pb.DEVICE_ACCESS_PUBLIC,
    DeviceAccess.PRIVATE: pb.DEVICE_ACCESS_PRIVATE,
}
_ACCESS_FROM_PB = {v: k for k, v in _ACCESS_TO_PB.items()}


def key_to_pb(key: Key, account_active: bool) -> pb.ApiKey:
    s = key.spec
    return pb.ApiKey(
        key=key.key, account_id=key.account_id, name=s.name, kind=_KIND_TO_PB[key.kind],
        primary=key.primary, device_id=s.device_id, stream=s.stream,
        distribution_id=s.distribution_id, collection_id=s.collection_id,
        permissions=list(s.permissions), expires_at_ms=s.expires_at_ms, origins=list(s.origins),
        device_access=_ACCESS_TO_PB[s.device_access], created_ms=key.created_ms,
        updated_ms=key.updated_ms, account_active=account_active,
    )  # fmt: skip


def spec_from_pb(spec: pb.KeySpec) -> Spec:
    return Spec(
        name=spec.name, device_id=spec.device_id, stream=spec.stream,
        distribution_id=spec.distribution_id, collection_id=spec.collection_id,
        permissions=tuple(spec.permissions), expires_at_ms=spec.expires_at_ms,
        origins=tuple(spec.origins),
        device_access=_ACCESS_FROM_PB.get(spec.device_access, DeviceAccess.PUBLIC),
    )  # fmt: skip


def account_to_pb(account: Account, master: Key) -> pb.Account:
    return pb.Account(id=account.id, name=account.name, active=account.active,
                      master_key=master.key, created_ms=account.created_ms)  # fmt: skip


def kind_from_pb(kind: pb.KeyKind) -> Kind:
    # UNSPECIFIED maps to MASTER, which every target-scoped RPC rejects as not_valid.
    return _KIND_FROM_PB.get(kind, Kind.MASTER)


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def _key(self, key: Key) -> pb.ApiKey:
        return key_to_pb(key, self.ring.account_active(key.account_id))

    async def CreateAccount(
        self,
        request: pb.CreateAccountRequest,
        context: UnaryContext[pb.CreateAccountRequest, pb.CreateAccountResponse],
    ) -> pb.CreateAccountResponse:
        account, master = await self.ring.create_account(request.name)
        return pb.CreateAccountResponse(account=account_to_pb(account, master))

    async def GetAccount(
        self,
        request: pb.GetAccountRequest,
        context: UnaryContext[pb.GetAccountRequest, pb.GetAccountResponse],
    ) -> pb.GetAccountResponse:
        account, master = self.ring.account(request.account_id)
        return pb.GetAccountResponse(account=account_to_pb(account, master))

    async def Authenticate(
        self,
        request: pb.AuthenticateRequest,
        context: UnaryContext[pb.AuthenticateRequest, pb.AuthenticateResponse],
    ) -> pb.AuthenticateResponse:
        key, active = self.ring.authenticate(request.credential)
        return pb.AuthenticateResponse(key=key_to_pb(key, active))

    async def CreateKey(
        self,
        request: pb.CreateKeyRequest,
        context: UnaryContext[pb.CreateKeyRequest, pb.CreateKeyResponse],
    ) -> pb.CreateKeyResponse:
        key = await self.ring.create(request.account_id, spec_from_pb(request.spec))
        return pb.CreateKeyResponse(key=self._key(key))

    async def CreatePrimaryKey(
        self,
        request: pb.CreatePrimaryKeyRequest,
        context: UnaryContext[pb.CreatePrimaryKeyRequest, pb.CreatePrimaryKeyResponse],
    ) -> pb.CreatePrimaryKeyResponse:
        key = await self.ring.create_primary(
            request.account_id, kind_from_pb(request.kind), request.target_id
        )
        return pb.CreatePrimaryKeyResponse(key=self._key(key))

    async def GetKey(
        self, request: pb.GetKeyRequest, context: UnaryContext[pb.GetKeyRequest, pb.GetKeyResponse]
    ) -> pb.GetKeyResponse:
        return pb.GetKeyResponse(key=self._key(self.ring.get(request.account_id, request.key)))

    async def ListKeys(
        self,
        request: pb.ListKeysRequest,
        context: UnaryContext[pb.ListKeysRequest, pb.ListKeysResponse],
    ) -> pb.ListKeysResponse:
        keys = self.ring.list(
            request.account_id, request.device_id, request.distribution_id, request.collection_id
        )
        return pb.ListKeysResponse(keys=[self._key(k) for k in keys])

    async def GetPrimaryKeys(
        self,
        request: pb.GetPrimaryKeysRequest,
        context: UnaryContext[pb.GetPrimaryKeysRequest, pb.GetPrimaryKeysResponse],
    ) -> pb.GetPrimaryKeysResponse:
        keys = self.ring.primary_keys(
            request.account_id, kind_from_pb(request.kind), list(request.target_ids)
        )
        return pb.GetPrimaryKeysResponse(keys=keys)

    async def UpdateKey(
        self,
        request: pb.UpdateKeyRequest,
        context: UnaryContext[pb.UpdateKeyRequest, pb.UpdateKeyResponse],
    ) -> pb.UpdateKeyResponse:
        key = await self.ring.update(
            request.account_id, request.key, spec_from_pb(request.spec), tuple(request.fields)
        )
        return pb.UpdateKeyResponse(key=self._key(key))

    async def RegenerateKey(
        self,
        request: pb.RegenerateKeyRequest,
        context: UnaryContext[pb.RegenerateKeyRequest, pb.RegenerateKeyResponse],
    ) -> pb.RegenerateKeyResponse:
        key = await self.ring.regenerate(request.account_id, request.key)
        return pb.RegenerateKeyResponse(key=self._key(key), previous_key=request.key)

    async def DeleteKey(
        self,
        request: pb.DeleteKeyRequest,
        context: UnaryContext[pb.DeleteKeyRequest, pb.DeleteKeyResponse],
    ) -> pb.DeleteKeyResponse:
        await self.ring.delete(request.account_id, request.key)
        return pb.DeleteKeyResponse()

    async def RevokeKeys(
        self,
        request: pb.RevokeKeysRequest,
        context: UnaryContext[pb.RevokeKeysRequest, pb.RevokeKeysResponse],
    ) -> pb.RevokeKeysResponse:
        revoked = await self.ring.revoke(
            request.account_id, kind_from_pb(request.kind), request.target_id
        )
        return pb.RevokeKeysResponse(revoked=revoked)

    async def WatchKeyChanges(
        self,
        request: pb.WatchKeyChangesRequest,
        context: StreamContext[pb.WatchKeyChangesRequest, pb.WatchKeyChangesResponse],
    ) -> AsyncIterator[pb.WatchKeyChangesResponse]:
        first = True
        async for batch in self.ring.feed.subscribe():
            yield pb.WatchKeyChangesResponse(subscribed=first, keys=list(batch))
            first = False
