"""Keys and accounts in ClickHouse, with a write-through cache that answers every read.

Everything is loaded once at start (FINAL); afterwards reads never touch ClickHouse, and a write
returns only after its INSERT did, so the cache never holds what a crash would lose. The
service is the only writer of its database.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from m2x.runtime.clickhouse import Database
from services.keys.domain import Account, DeviceAccess, Key, Kind, Spec

_KEY_COLUMNS = (
    "key", "account_id", "name", "kind", "is_primary", "device_id", "stream", "distribution_id",
    "collection_id", "permissions", "expires_at_ms", "origins", "device_access", "created_ms",
    "updated_ms", "version", "is_deleted",
)  # fmt: skip
_ACCOUNT_COLUMNS = ("id", "name", "active", "created_ms", "version", "is_deleted")


def _row(key: Key, version: int, deleted: bool) -> tuple[Any, ...]:
    s = key.spec
    return (
        key.key, key.account_id, s.name, key.kind.value, int(key.primary), s.device_id, s.stream,
        s.distribution_id, s.collection_id, list(s.permissions), s.expires_at_ms, list(s.origins),
        s.device_access.value, key.created_ms, key.updated_ms, version, int(deleted),
    )  # fmt: skip


def _key(row: tuple[Any, ...]) -> Key:
    (key, account_id, name, kind, primary, device_id, stream, distribution_id, collection_id,
     permissions, expires_at_ms, origins, device_access, created_ms, updated_ms) = row  # fmt: skip
    spec = Spec(
        name=name, device_id=device_id, stream=stream, distribution_id=distribution_id,
        collection_id=collection_id, permissions=tuple(permissions), expires_at_ms=expires_at_ms,
        origins=tuple(origins), device_access=DeviceAccess(device_access),
    )  # fmt: skip
    return Key(key, account_id, Kind(kind), bool(primary), spec, created_ms, updated_ms)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._keys: dict[str, Key] = {}
        self._by_account: dict[str, dict[str, Key]] = {}
        self._accounts: dict[str, Account] = {}
        self._last_version = 0

    def _next_version(self) -> int:
        # Nanosecond clock, forced monotonic so two writes in one tick still order correctly.
        self._last_version = max(time.time_ns(), self._last_version + 1)
        return self._last_version

    async def load(self) -> None:
        columns = ", ".join(_KEY_COLUMNS[:-2])
        for row in await self.db.query(f"SELECT {columns} FROM api_keys FINAL"):
            self._remember(_key(row))
        for id_, name, active, created in await self.db.query(
            "SELECT id, name, active, created_ms FROM accounts FINAL"
        ):
            self._accounts[id_] = Account(id_, name, bool(active), created)

    def _remember(self, key: Key) -> None:
        self._keys[key.key] = key
        self._by_account.setdefault(key.account_id, {})[key.key] = key

    def _forget(self, key: Key) -> None:
        self._keys.pop(key.key, None)
        self._by_account.get(key.account_id, {}).pop(key.key, None)

    # reads (cache only)
    def key(self, secret: str) -> Key | None:
        return self._keys.get(secret)

    def account(self, account_id: str) -> Account | None:
        return self._accounts.get(account_id)

    def keys_of(self, account_id: str) -> list[Key]:
        return sorted(self._by_account.get(account_id, {}).values(), key=lambda k: k.created_ms)

    # writes (ClickHouse first, then the cache)
    async def save_account(self, account: Account) -> None:
        row = (account.id, account.name, int(account.active), account.created_ms,
               self._next_version(), 0)  # fmt: skip
        await self.db.insert("accounts", [row], _ACCOUNT_COLUMNS)
        self._accounts[account.id] = account

    async def write(self, saved: Iterable[Key] = (), deleted: Iterable[Key] = ()) -> None:
        """Save and delete keys in one INSERT, so a crash keeps all of it or none."""
        saved, deleted = list(saved), list(deleted)
        rows = [_row(k, self._next_version(), False) for k in saved]
        rows += [_row(k, self._next_version(), True) for k in deleted]
        await self.db.insert("api_keys", rows, _KEY_COLUMNS)
        for key in deleted:
            self._forget(key)
        for key in saved:
            self._remember(key)
