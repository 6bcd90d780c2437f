"""What the keys service does: accounts, key life cycle, authentication, change events."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import secrets
import time

from m2x.runtime.errors import NotFound, Unauthenticated, ValidationFailed
from services.keys import domain
from services.keys.changes import ChangeFeed
from services.keys.domain import Account, Key, Kind, Spec
from services.keys.store import KeyStore


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class KeyRing:
    def __init__(self, store: KeyStore, feed: ChangeFeed) -> None:
        self.store = store
        self.feed = feed
        # Writes are few and must not interleave (a regenerate reads then replaces a key).
        self._write_lock = asyncio.Lock()

    # accounts
    async def create_account(self, name: str) -> tuple[Account, Key]:
        name = name.strip()
        if not name or len(name) > domain.MAX_NAME:
            raise ValidationFailed({"name": ["not_present" if not name else "not_valid"]})
        account = Account(secrets.token_hex(16), name, True, _now_ms())
        async with self._write_lock:
            await self.store.save_account(account)
            master = self._new_key(
                account.id, Kind.MASTER, True, domain.primary_spec(Kind.MASTER, "")
            )
            await self.store.write(saved=[master])
        self.feed.publish([master.key])
        return account, master

    def account(self, account_id: str) -> tuple[Account, Key]:
        account = self.store.account(account_id)
        if account is None:
            raise NotFound("Account", account_id)
        master = next(
            k for k in self.store.keys_of(account_id) if k.primary and k.kind is Kind.MASTER
        )
        return account, master

    def account_active(self, account_id: str) -> bool:
        account = self.store.account(account_id)
        return bool(account and account.active)

    # authentication
    def authenticate(self, credential: str) -> tuple[Key, bool]:
        """The key a credential names and whether its account is active."""
        key = self.store.key(credential)
        if key is None:
            raise Unauthenticated("unknown API key")
        return key, self.account_active(key.account_id)

    # keys
    def _new_key(self, account_id: str, kind: Kind, primary: bool, spec: Spec) -> Key:
        now = _now_ms()
        return Key(domain.new_secret(), account_id, kind, primary, spec, now, now)

    def get(self, account_id: str, secret: str) -> Key:
        key = self.store.key(secret)
        if key is None or key.account_id != account_id:
            raise NotFound("Key", secret)
        return key

    def list(self, account_id: str, device_id: str = "", distribution_id: str = "",
             collection_id: str = "") -> list[Key]:  # fmt: skip
        wanted = {"device_id": device_id, "distribution_id": distribution_id,
                  "collection_id": collection_id}  # fmt: skip
        return [
            k for k in self.store.keys_of(account_id)
            if all(getattr(k.spec, f) == v for f, v in wanted.items() if v)
        ]  # fmt: skip

    def primary_keys(
        self, account_id: str, kind: Kind, target_ids: builtins.list[str]
    ) -> dict[str, str]:
        wanted = set(target_ids)
        return {
            k.target_id: k.key for k in self.store.keys_of(account_id)
            if k.primary and k.kind is kind and k.target_id in wanted
        }  # fmt: skip

    def _require_account(self, account_id: str) -> None:
        if self.store.account(account_id) is None:
            raise NotFound("Account", account_id)

    async def create(self, account_id: str, spec: Spec) -> Key:
        self._require_account(account_id)
        spec = domain.validate(spec)
        key = self._new_key(account_id, domain.kind_of(spec), False, spec)
        async with self._write_lock:
            await self.store.write(saved=[key])
        self.feed.publish([key.key])
        return key

    async def create_primary(self, account_id: str, kind: Kind, target_id: str) -> Key:
        """The primary key of a device, collection or distribution, created once."""
        if kind is Kind.MASTER:
            raise ValidationFailed({"kind": ["not_valid"]})
        self._require_account(account_id)
        spec = domain.primary_spec(kind, target_id)
        async with self._write_lock:
            for key in self.store.keys_of(account_id):
                if key.primary and key.kind is kind and key.target_id == target_id:
                    return key
            key = self._new_key(account_id, kind, True, spec)
            await self.store.write(saved=[key])
        self.feed.publish([key.key])
        return key

    async def update(
        self, account_id: str, secret: str, changes: Spec, fields: tuple[str, ...]
    ) -> Key:
        async with self._write_lock:
            current = self.get(account_id, secret)
            spec = domain.updated_spec(current, changes, fields)
            key = dataclasses.replace(current, spec=spec, updated_ms=_now_ms())
            await self.store.write(saved=[key])
        self.feed.publish([key.key])
        return key

    async def regenerate(self, account_id: str, secret: str) -> Key:
        async with self._write_lock:
            current = self.get(account_id, secret)
            key = dataclasses.replace(current, key=domain.new_secret(), updated_ms=_now_ms())
            await self.store.write(saved=[key], deleted=[current])
        self.feed.publish([current.key, key.key])
        return key

    async def delete(self, account_id: str, secret: str) -> None:
        async with self._write_lock:
            current = self.get(account_id, secret)
            domain.ensure_deletable(current)
            await self.store.write(deleted=[current])
        self.feed.publish([current.key])

    async def revoke(self, account_id: str, kind: Kind, target_id: str) -> builtins.list[str]:
        """Delete every key scoped to a target that is itself being deleted."""
        async with self._write_lock:
            doomed = [
                k for k in self.store.keys_of(account_id)
                if k.kind is kind and k.target_id == target_id
            ]  # fmt: skip
            if doomed:
                await self.store.write(deleted=doomed)
        self.feed.publish([k.key for k in doomed])
        return [k.key for k in doomed]
