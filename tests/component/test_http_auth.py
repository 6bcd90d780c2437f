"""Authentication and key restrictions of spec §1.2-§1.4 through the real adapter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.stack import Stack

UNAUTHORIZED = {
    "message": "Unauthorized",
    "description": "No valid API key was provided. Send it in the X-M2X-KEY header or as "
    "'Authorization: Bearer <key>'; see https://m2x.att.com/developer/documentation.",
}
EXPIRED = {
    "message": "Your API key has expired",
    "description": "Regenerate the key or use another one.",
}
WRONG_METHOD = {
    "message": "Forbidden",
    "description": "Your API key is not allowed to use this HTTP method.",
}
WRONG_ORIGIN = {
    "message": "Forbidden",
    "description": "Your API key may not be used from this IP address.",
}
MASTER_REQUIRED = {
    "message": "Forbidden",
    "description": "This resource requires a Master API key.",
}
DEVICE_ID = "0123456789abcdef0123456789abcdef"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def create_key(stack: Stack, master: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "test key")
    fields.setdefault("permissions", ["GET", "POST", "PUT", "DELETE"])
    status, body, _ = await stack.request("POST", "/v2/keys", key=master, json=fields)
    assert status == 201, body
    return body


async def test_missing_or_unknown_key_is_401(stack: Stack) -> None:
    await stack.new_account()
    status, body, _ = await stack.request("GET", "/v2/keys")
    assert (status, body) == (401, UNAUTHORIZED)

    for headers in (
        {"X-M2X-KEY": "0" * 32},
        {"X-M2X-KEY": "not-even-hex"},
        {"Authorization": "Bearer " + "0" * 32},
        {"Authorization": "Bearer"},
    ):
        status, body, _ = await stack.request("GET", "/v2/keys", headers=headers)
        assert (status, body) == (401, UNAUTHORIZED), headers


async def test_bearer_header_works_like_x_m2x_key(stack: Stack) -> None:
    _, master = await stack.new_account()
    for headers in (
        {"X-M2X-KEY": master},
        {"Authorization": f"Bearer {master}"},
        {"Authorization": f"bearer {master}"},
    ):
        status, body, _ = await stack.request("GET", "/v2/keys", headers=headers)
        assert status == 200, headers
        assert [k["key"] for k in body["keys"]] == [master]

    # Another scheme carries no API key.
    status, body, _ = await stack.request(
        "GET", "/v2/keys", headers={"Authorization": f"Basic {master}"}
    )
    assert (status, body) == (401, UNAUTHORIZED)


async def test_method_restriction(stack: Stack) -> None:
    _, master = await stack.new_account()
    reader = (await create_key(stack, master, permissions=["GET"]))["key"]

    status, body, _ = await stack.request("GET", "/v2/keys", key=reader)
    assert status == 200
    assert len(body["keys"]) == 2
    status, _, _ = await stack.request("HEAD", "/v2/keys", key=reader)
    assert status == 200  # HEAD whenever GET

    status, body, _ = await stack.request(
        "POST", "/v2/keys", key=reader, json={"name": "x", "permissions": ["GET"]}
    )
    assert (status, body) == (403, WRONG_METHOD)
    status, body, _ = await stack.request("DELETE", f"/v2/keys/{reader}", key=reader)
    assert (status, body) == (403, WRONG_METHOD)
    status, body, _ = await stack.request("PUT", f"/v2/keys/{reader}", key=reader, json={})
    assert (status, body) == (403, WRONG_METHOD)

    # A key allowed to POST but not GET.
    writer = (await create_key(stack, master, permissions=["POST"]))["key"]
    status, body, _ = await stack.request("GET", "/v2/keys", key=writer)
    assert (status, body) == (403, WRONG_METHOD)
    status, body, _ = await stack.request("HEAD", "/v2/keys", key=writer)
    assert status == 403
    status, body, _ = await stack.request(
        "POST", "/v2/keys", key=writer, json={"name": "x", "permissions": ["GET"]}
    )
    assert status == 201


async def test_expiry(stack: Stack) -> None:
    _, master = await stack.new_account()
    now = datetime.now(UTC)

    past = await create_key(stack, master, expires_at=iso(now - timedelta(minutes=5)))
    assert past["expired"] is True
    status, body, _ = await stack.request("GET", "/v2/keys", key=past["key"])
    assert (status, body) == (403, EXPIRED)

    future = await create_key(stack, master, expires_at=iso(now + timedelta(days=1)))
    assert future["expired"] is False
    status, _, _ = await stack.request("GET", "/v2/keys", key=future["key"])
    assert status == 200

    # Expiring a key that works takes effect on its very next request...
    status, _, _ = await stack.request(
        "PUT", f"/v2/keys/{future['key']}", key=master,
        json={"expires_at": iso(now - timedelta(seconds=1))},
    )  # fmt: skip
    assert status == 204
    status, body, _ = await stack.request("GET", "/v2/keys", key=future["key"])
    assert (status, body) == (403, EXPIRED)
    _, shown, _ = await stack.request("GET", f"/v2/keys/{future['key']}", key=master)
    assert shown["expired"] is True

    # ...and so does lifting the expiry.
    status, _, _ = await stack.request(
        "PUT", f"/v2/keys/{future['key']}", key=master, json={"expires_at": None}
    )
    assert status == 204
    status, _, _ = await stack.request("GET", "/v2/keys", key=future["key"])
    assert status == 200
    _, shown, _ = await stack.request("GET", f"/v2/keys/{future['key']}", key=master)
    assert (shown["expired"], shown["expires_at"]) == (False, None)


async def test_origin_restriction(stack: Stack) -> None:
    _, master = await stack.new_account()

    for origin in ("127.0.0.1", "127.0.0.0/8", "10.9.9.9, 127.0.0.1"):
        key = await create_key(stack, master, origin=origin)
        status, _, _ = await stack.request("GET", "/v2/keys", key=key["key"])
        assert status == 200, origin
    assert key["origin"] == "10.9.9.9,127.0.0.1"

    elsewhere = await create_key(stack, master, origin="10.9.9.9")
    assert elsewhere["origin"] == "10.9.9.9"
    status, body, _ = await stack.request("GET", "/v2/keys", key=elsewhere["key"])
    assert (status, body) == (403, WRONG_ORIGIN)
    network = await create_key(stack, master, origin="10.0.0.0/8")
    status, body, _ = await stack.request("GET", "/v2/keys", key=network["key"])
    assert (status, body) == (403, WRONG_ORIGIN)

    # Widening the origin lets the key in at once.
    status, _, _ = await stack.request(
        "PUT", f"/v2/keys/{elsewhere['key']}", key=master, json={"origin": "10.9.9.9,127.0.0.1"}
    )
    assert status == 204
    status, _, _ = await stack.request("GET", "/v2/keys", key=elsewhere["key"])
    assert status == 200


async def test_device_keys_cannot_use_master_routes(stack: Stack) -> None:
    _, master = await stack.new_account()
    device_key = await create_key(stack, master, device=DEVICE_ID)
    assert device_key["master"] is False
    assert device_key["device"] == f"{stack.url}/v2/devices/{DEVICE_ID}"
    assert device_key["stream"] is None

    for method, path in (
        ("GET", "/v2/keys"),
        ("POST", "/v2/keys"),
        ("GET", f"/v2/keys/{device_key['key']}"),
        ("DELETE", f"/v2/keys/{device_key['key']}"),
    ):
        json = {"name": "x", "permissions": ["GET"]} if method == "POST" else None
        status, body, _ = await stack.request(method, path, key=device_key["key"], json=json)
        assert (status, body) == (403, MASTER_REQUIRED), (method, path)

    # The public routes are open to it.
    status, _, _ = await stack.request("GET", "/v2/time", key=device_key["key"])
    assert status == 200
    # OPTIONS tells it nothing but OPTIONS is usable on the keys routes.
    status, _, headers = await stack.request("OPTIONS", "/v2/keys", key=device_key["key"])
    assert (status, headers["Allow"]) == (200, "OPTIONS")


async def test_stream_restriction_requires_a_device(stack: Stack) -> None:
    _, master = await stack.new_account()
    status, body, _ = await stack.request(
        "POST", "/v2/keys", key=master,
        json={"name": "s", "permissions": ["GET"], "stream": "temperature"},
    )  # fmt: skip
    assert (status, body) == (
        422,
        {"message": "Validation Failed", "errors": {"stream": ["not_valid"]}},
    )

    stream_key = await create_key(stack, master, device=DEVICE_ID, stream="temperature")
    assert stream_key["stream"] == "temperature"
    assert stream_key["device"] == f"{stack.url}/v2/devices/{DEVICE_ID}"
    assert stream_key["master"] is False


async def test_keys_of_another_account_are_not_found(stack: Stack) -> None:
    _, master_a = await stack.new_account("a")
    _, master_b = await stack.new_account("b")
    key_b = (await create_key(stack, master_b, name="b's key"))["key"]
    not_found = {
        "message": "Key Not Found",
        "description": "The resource you requested could not be found. Please verify that the "
        "correct resource path was provided, or refer to "
        "https://m2x.att.com/developer/documentation for complete API documentation.",
    }

    for target in (key_b, master_b):
        status, body, _ = await stack.request("GET", f"/v2/keys/{target}", key=master_a)
        assert (status, body) == (404, not_found), target
        status, body, _ = await stack.request("DELETE", f"/v2/keys/{target}", key=master_a)
        assert (status, body) == (404, not_found), target
        status, body, _ = await stack.request(
            "PUT", f"/v2/keys/{target}", key=master_a, json={"name": "mine now"}
        )
        assert (status, body) == (404, not_found), target
        status, body, _ = await stack.request("POST", f"/v2/keys/{target}/regenerate", key=master_a)
        assert (status, body) == (404, not_found), target

    # B's keys are untouched and still work; A's list shows only A's key.
    status, body, _ = await stack.request("GET", f"/v2/keys/{key_b}", key=master_b)
    assert (status, body["name"]) == (200, "b's key")
    status, _, _ = await stack.request("GET", "/v2/keys", key=key_b)
    assert status == 200
    _, listing, _ = await stack.request("GET", "/v2/keys", key=master_a)
    assert [k["key"] for k in listing["keys"]] == [master_a]
    assert re.fullmatch(r"[0-9a-f]{32}", master_a)
