"""The Keys API (spec §13): list, create, view, update, regenerate and delete API keys."""

from __future__ import annotations

import time
from typing import Any

from adapters.api.context import Call
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from adapters.api.rpc import call
from m2x.keys.v1 import keys_pb2 as pb
from m2x.runtime.timefmt import iso_ms

# Public field -> KeySpec field, for updates that change only the fields sent.
_SPEC_FIELDS = {
    "name": "name", "device": "device_id", "stream": "stream", "distribution": "distribution_id",
    "collection": "collection_id", "permissions": "permissions", "expires_at": "expires_at_ms",
    "origin": "origins", "device_access": "device_access",
}  # fmt: skip
_ACCESS = {"public": pb.DEVICE_ACCESS_PUBLIC, "private": pb.DEVICE_ACCESS_PRIVATE}
_ACCESS_NAMES = {v: k for k, v in _ACCESS.items()}


def key_json(c: Call, key: pb.ApiKey) -> dict[str, Any]:
    """The public key object of spec §22.7."""

    def link(kind: str, target: str) -> str | None:
        return c.url(f"/v2/{kind}/{target}") if target else None

    now_ms = time.time_ns() // 1_000_000
    return {
        "name": key.name,
        "key": key.key,
        "master": key.kind == pb.KEY_KIND_MASTER,
        "device": link("devices", key.device_id),
        "stream": key.stream or None,
        "distribution": link("distributions", key.distribution_id),
        "collection": link("collections", key.collection_id),
        "permissions": list(key.permissions),
        "expires_at": iso_ms(key.expires_at_ms) if key.expires_at_ms else None,
        "expired": 0 < key.expires_at_ms <= now_ms,
        "origin": ",".join(key.origins) or None,
        "device_access": _ACCESS_NAMES.get(key.device_access, "public"),
        "created": iso_ms(key.created_ms),
        "updated": iso_ms(key.updated_ms),
    }


def _read_spec(c: Call) -> tuple[pb.KeySpec, list[str]]:
    """The KeySpec a body describes and the KeySpec fields it sets."""
    body = c.body_object()
    fields = FieldReader(body)
    spec = pb.KeySpec(
        name=fields.string("name"),
        device_id=fields.string("device"),
        stream=fields.string("stream"),
        distribution_id=fields.string("distribution"),
        collection_id=fields.string("collection"),
        permissions=fields.string_list("permissions"),
        # 0 means "never expires", so an expiry at the epoch itself becomes 1 ms after it.
        expires_at_ms=max(fields.timestamp_ms("expires_at"), 1) if body.get("expires_at") else 0,
        origins=fields.string_list("origin", split_commas=True),
        device_access=_ACCESS[fields.choice("device_access", tuple(_ACCESS), "public")],
    )
    fields.done()
    return spec, [_SPEC_FIELDS[name] for name in body if name in _SPEC_FIELDS]


def _created(c: Call, key: pb.ApiKey) -> ApiResponse:
    url = c.url(f"/v2/keys/{key.key}")
    return ApiResponse(201, key_json(c, key), headers={"Location": url})


async def list_keys(c: Call) -> ApiResponse:
    q = c.request.query
    request = pb.ListKeysRequest(
        account_id=c.account_id,
        device_id=q.get("device", ""),
        distribution_id=q.get("distribution", ""),
        collection_id=q.get("collection", ""),
    )
    reply: Any = await call(c.services.keys.stub.ListKeys, request)
    return ApiResponse(200, {"keys": [key_json(c, k) for k in reply.keys]})


async def create_key(c: Call) -> ApiResponse:
    spec, _ = _read_spec(c)
    request = pb.CreateKeyRequest(account_id=c.account_id, spec=spec)
    reply: Any = await call(c.services.keys.stub.CreateKey, request)
    return _created(c, reply.key)


async def view_key(c: Call) -> ApiResponse:
    # Served from the principal cache, which the change feed keeps exact.
    key = await c.services.keys.key_record(c.account_id, c.params["key"])
    return ApiResponse(200, key_json(c, key))


async def update_key(c: Call) -> ApiResponse:
    spec, fields = _read_spec(c)
    secret = c.params["key"]
    request = pb.UpdateKeyRequest(account_id=c.account_id, key=secret, spec=spec, fields=fields)
    await call(c.services.keys.stub.UpdateKey, request)
    c.services.keys.evict([secret])  # the feed does this too; this request's answer must not wait
    return ApiResponse(204)


async def regenerate_key(c: Call) -> ApiResponse:
    secret = c.params["key"]
    request = pb.RegenerateKeyRequest(account_id=c.account_id, key=secret)
    reply: Any = await call(c.services.keys.stub.RegenerateKey, request)
    c.services.keys.evict([secret])
    return _created(c, reply.key)


async def delete_key(c: Call) -> ApiResponse:
    secret = c.params["key"]
    await call(
        c.services.keys.stub.DeleteKey, pb.DeleteKeyRequest(account_id=c.account_id, key=secret)
    )
    c.services.keys.evict([secret])
    return ApiResponse(204)


def routes() -> RouteTable:
    table = RouteTable()
    table.add("GET", "/v2/keys", list_keys, Access.MASTER)
    table.add("POST", "/v2/keys", create_key, Access.MASTER)
    table.add("GET", "/v2/keys/{key}", view_key, Access.MASTER)
    table.add("PUT", "/v2/keys/{key}", update_key, Access.MASTER)
    table.add("DELETE", "/v2/keys/{key}", delete_key, Access.MASTER)
    table.add("POST", "/v2/keys/{key}/regenerate", regenerate_key, Access.MASTER)
    return table
