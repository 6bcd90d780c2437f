"""Principals: who a credential is, cached in the adapter and dropped the moment it changes.

Authenticating costs a keys-service RPC only on a cache miss. The cache is trusted only while
the keys service's change feed is connected: every change arrives there and evicts the keys it
names, and losing the feed empties the cache and bypasses it until the feed is back, so a
regenerated, changed or deleted key can never be served from a stale entry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc

from adapters.api.rpc import call
from m2x.keys.v1 import keys_pb2 as pb
from m2x.keys.v1 import keys_pb2_grpc
from m2x.runtime.errors import Unauthenticated

logger = logging.getLogger(__name__)

KIND_NAMES = {
    pb.KEY_KIND_MASTER: "master",
    pb.KEY_KIND_DEVICE: "device",
    pb.KEY_KIND_COLLECTION: "collection",
    pb.KEY_KIND_DISTRIBUTION: "distribution",
}


@dataclass(frozen=True, slots=True)
class Principal:
    key: str
    account_id: str
    kind: str  # master, device, collection, distribution
    primary: bool
    device_id: str
    stream: str
    permissions: frozenset[str]
    expires_at_ms: int
    origins: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    account_active: bool
    record: pb.ApiKey

    @classmethod
    def from_pb(cls, key: pb.ApiKey) -> Principal:
        return cls(
            key=key.key, account_id=key.account_id, kind=KIND_NAMES.get(key.kind, "master"),
            primary=key.primary, device_id=key.device_id, stream=key.stream,
            permissions=frozenset(key.permissions), expires_at_ms=key.expires_at_ms,
            origins=tuple(ipaddress.ip_network(o, strict=False) for o in key.origins),
            account_active=key.account_active, record=key,
        )  # fmt: skip

    @property
    def is_master(self) -> bool:
        return self.kind == "master"

    def expired(self, now_ms: int | None = None) -> bool:
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return 0 < self.expires_at_ms <= now_ms

    def origin_allowed(self, client: str) -> bool:
        if not self.origins:
            return True
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.origins)


class KeysGateway:
    """The adapter's view of the keys service: RPC stub plus the principal cache."""

    def __init__(self, channel: grpc.aio.Channel, ttl: float = 300.0) -> None:
        self.stub = keys_pb2_grpc.KeysServiceStub(channel)
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}
        self.live = False  # is the change feed connected?
        self.feed_ready = asyncio.Event()
        # Bumped by every change event and feed loss: an answer fetched while it moved may
        # predate a change, so it is used once but not cached.
        self._generation = 0

    async def principal(self, credential: str) -> Principal | None:
        """The principal for a credential, or None when no key has that string."""
        entry = self._cache.get(credential)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        pending = self._pending.get(credential)
        if pending is not None:  # one RPC however many requests wait for the same key
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[credential] = future
        try:
            result = await self._authenticate(credential)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[credential]

    async def _authenticate(self, credential: str) -> Principal | None:
        generation = self._generation
        try:
            request = pb.AuthenticateRequest(credential=credential)
            reply: Any = await call(self.stub.Authenticate, request)
            principal: Principal | None = Principal.from_pb(reply.key)
        except Unauthenticated:
            principal = None
        self._store(credential, principal, generation)
        return principal

    def _store(self, credential: str, principal: Principal | None, generation: int) -> None:
        # Cache only what was fetched while the feed was live and quiet throughout.
        if self.live and generation == self._generation:
            self._cache[credential] = (principal, time.monotonic() + self.ttl)

    async def key_record(self, account_id: str, secret: str) -> pb.ApiKey:
        """A key of the account, from the cache when possible (NotFound otherwise)."""
        cached = self.cached(secret)
        if cached is not None and cached.account_id == account_id:
            return cached.record
        generation = self._generation
        request = pb.GetKeyRequest(account_id=account_id, key=secret)
        reply: Any = await call(self.stub.GetKey, request)
        self._store(secret, Principal.from_pb(reply.key), generation)
        return reply.key

    def cached(self, credential: str) -> Principal | None:
        entry = self._cache.get(credential)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def evict(self, keys: list[str] | tuple[str, ...]) -> None:
        self._generation += 1
        for key in keys:
            self._cache.pop(key, None)

    async def watch(self) -> None:
        """Follow the change feed forever, reconnecting with back-off."""
        delay = 0.1
        while True:
            reason = "stream ended"
            try:
                stream = self.stub.WatchKeyChanges(pb.WatchKeyChangesRequest(), wait_for_ready=True)
                async for change in stream:
                    if change.subscribed:
                        self._generation += 1
                        self._cache.clear()
                        self.live = True
                        self.feed_ready.set()
                        delay = 0.1
                        logger.info("key change feed connected")
                    self.evict(tuple(change.keys))
            except grpc.RpcError as exc:
                reason = str(exc.code())
            if self.live:
                logger.warning("key change feed lost (%s); cache bypassed", reason)
            self.live = False
            self._generation += 1
            self._cache.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
