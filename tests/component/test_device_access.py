"""Who reaches a device (spec §1.2-§1.4, §1.11 device writes) through the real adapter."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from tests.support.stack import Stack

TS = "2024-01-01T00:00:00.000Z"
RANGE = {"from": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}
DEVICE_NOT_FOUND = "Device Not Found"


async def create_device(stack: Stack, master: str, **fields: Any) -> dict[str, Any]:
    """A device with a numeric stream `a` holding one value, a location and metadata."""
    fields.setdefault("name", "device")
    fields.setdefault("visibility", "private")
    status, device, _ = await stack.request("POST", "/v2/devices", key=master, json=fields)
    assert status == 201, device
    base = f"/v2/devices/{device['id']}"
    setup: list[tuple[str, str, Any, int]] = [
        ("PUT", f"{base}/streams/a", {}, 201),
        ("PUT", f"{base}/streams/b", {}, 201),
        ("PUT", f"{base}/streams/a/value", {"value": 1, "timestamp": TS}, 202),
        ("PUT", f"{base}/location", {"latitude": 1, "longitude": 2, "timestamp": TS}, 202),
        ("PUT", f"{base}/metadata", {"room": "7"}, 204),
    ]
    for method, path, body, expected in setup:
        status, answer, _ = await stack.request(method, path, key=master, json=body)
        assert status == expected, (path, answer)
    return device


def read_routes(base: str) -> list[tuple[str, str, Any]]:
    """Every read under a device (stream `a`); value search is a read, also by POST."""
    return [
        ("GET", base, None),
        ("GET", f"{base}/streams", None),
        ("GET", f"{base}/streams/a", None),
        ("GET", f"{base}/streams/a/values", None),
        ("GET", f"{base}/streams/a/values.csv", None),
        ("GET", f"{base}/streams/a/sampling?type=avg&interval=60", None),
        ("GET", f"{base}/streams/a/stats", None),
        ("GET", f"{base}/values", None),
        ("GET", f"{base}/values/search", None),
        ("POST", f"{base}/values/search", {"conditions": {"a": {"gte": 0}}}),
        ("GET", f"{base}/location", None),
        ("GET", f"{base}/location/waypoints", None),
        ("GET", f"{base}/metadata", None),
        ("GET", f"{base}/metadata/room", None),
    ]


def write_routes(base: str) -> list[tuple[str, str, Any]]:
    """Every non-master write under a device (stream `a`)."""
    return [
        ("PUT", f"{base}/streams/a", {"display_name": "A"}),
        ("PUT", f"{base}/streams/a/value", {"value": 2}),
        ("POST", f"{base}/streams/a/values", {"values": [{"timestamp": TS, "value": 3}]}),
        ("DELETE", f"{base}/streams/a/values", RANGE),
        ("POST", f"{base}/update", {"values": {"a": 4}}),
        ("POST", f"{base}/updates", {"values": {"a": [{"timestamp": TS, "value": 5}]}}),
        ("PUT", f"{base}/location", {"latitude": 3, "longitude": 4}),
        ("DELETE", f"{base}/location/waypoints", RANGE),
        ("PUT", f"{base}/metadata", {"room": "8"}),
        ("PUT", f"{base}/metadata/room", {"value": "9"}),
        ("DELETE", f"{base}/streams/b", None),
    ]


def master_routes(base: str) -> list[tuple[str, str, Any]]:
    return [("PUT", base, {"name": "renamed"}), ("DELETE", base, None)]


async def statuses(
    stack: Stack, key: str | None, routes: list[tuple[str, str, Any]]
) -> dict[str, tuple[int, str | None]]:
    """'METHOD path' -> (status, message) for each route."""
    found = {}
    for method, path, body in routes:
        status, answer, _ = await stack.request(method, path, key=key, json=body)
        message = answer.get("message") if isinstance(answer, dict) else None
        found[f"{method} {path}"] = (status, message)
    return found


def unexpected(
    found: dict[str, tuple[int, str | None]], status: int, message: str | None = None
) -> dict[str, tuple[int, str | None]]:
    """The answers that are not `status` (with `message`, when given)."""
    return {
        route: answer
        for route, answer in found.items()
        if answer[0] != status or (message is not None and answer[1] != message)
    }


async def test_device_key_reaches_only_its_device(stack: Stack) -> None:
    _, master = await stack.new_account()
    mine = await create_device(stack, master, name="mine")
    other = await create_device(stack, master, name="other")
    key = mine["key"]
    base, other_base = f"/v2/devices/{mine['id']}", f"/v2/devices/{other['id']}"

    found = await statuses(stack, key, read_routes(base))
    assert unexpected(found, 200) == {}
    status, body, _ = await stack.request("GET", base, key=key)
    assert "key" not in body, "a device key was shown its device's primary key"
    # Writes succeed with 2xx (202, 204...).
    found = await statuses(stack, key, write_routes(base))
    assert {r: a for r, a in found.items() if not 200 <= a[0] < 300} == {}
    # The serial path is the same device.
    status, _, _ = await stack.request("PUT", base, key=master, json={"serial": "mine-1"})
    assert status == 204
    status, _, _ = await stack.request("GET", "/v2/devices/serial/mine-1/streams", key=key)
    assert status == 200

    # Another device of the same account: 403 for every route.
    routes = read_routes(other_base) + write_routes(other_base) + master_routes(other_base)
    assert unexpected(await statuses(stack, key, routes), 403, "Forbidden") == {}
    # Master-only routes, even on its own device.
    master_only = [
        *master_routes(base),
        ("GET", "/v2/devices", None),
        ("POST", "/v2/devices", {"name": "x", "visibility": "private"}),
        ("GET", "/v2/devices/search", None),
        ("POST", "/v2/devices/search", {}),
        ("GET", "/v2/devices/tags", None),
        ("GET", "/v2/keys", None),
    ]
    assert unexpected(await statuses(stack, key, master_only), 403, "Forbidden") == {}
    status, body, _ = await stack.request("GET", base, key=master)
    assert (status, body["name"]) == (200, "mine")
    # A device key is refused on any other device id, of any account, existing or not (the
    # adapter decides before looking the device up, so the answer confirms nothing).
    _, stranger_master = await stack.new_account("stranger")
    stranger = await create_device(stack, stranger_master)
    for path in (base, "/v2/devices/" + "0" * 32):
        status, body, _ = await stack.request("GET", path, key=stranger["key"])
        assert (status, body["message"]) == (403, "Forbidden"), path


async def test_stream_restricted_key_reaches_only_its_stream(stack: Stack) -> None:
    _, master = await stack.new_account()
    device = await create_device(stack, master)
    base = f"/v2/devices/{device['id']}"
    status, created, _ = await stack.request(
        "POST", "/v2/keys", key=master,
        json={"name": "a only", "permissions": ["GET", "PUT", "POST", "DELETE"],
              "device": device["id"], "stream": "a"},
    )  # fmt: skip
    assert status == 201, created
    key = created["key"]

    allowed: list[tuple[str, str, Any]] = [
        ("GET", f"{base}/streams/a", None),
        ("GET", f"{base}/streams/a/values", None),
        ("GET", f"{base}/streams/a/stats", None),
        ("PUT", f"{base}/streams/a/value", {"value": 2}),
        ("POST", f"{base}/streams/a/values", {"values": [{"timestamp": TS, "value": 3}]}),
        ("POST", f"{base}/update", {"values": {"a": 4}}),
    ]
    found = await statuses(stack, key, allowed)
    assert {r: a for r, a in found.items() if not 200 <= a[0] < 300} == {}
    # It lists only its stream, and device-wide values only of it.
    status, body, _ = await stack.request("GET", f"{base}/streams", key=key)
    assert (status, [s["name"] for s in body["streams"]]) == (200, ["a"])
    status, _, _ = await stack.request(
        "PUT", f"{base}/streams/b/value", key=master, json={"value": 9}
    )
    assert status == 202
    status, body, _ = await stack.request("GET", f"{base}/values", key=key)
    assert status == 200
    assert {name for row in body["values"] for name in row["values"]} == {"a"}

    refused: list[tuple[str, str, Any]] = [
        ("GET", base, None),
        ("GET", f"{base}/location", None),
        ("GET", f"{base}/metadata", None),
        ("PUT", f"{base}/location", {"latitude": 1, "longitude": 1}),
        ("GET", f"{base}/streams/b", None),
        ("GET", f"{base}/streams/b/values", None),
        ("PUT", f"{base}/streams/b", {}),
        ("PUT", f"{base}/streams/new", {}),
        ("PUT", f"{base}/streams/b/value", {"value": 1}),
        ("POST", f"{base}/streams/b/values", {"values": [{"timestamp": TS, "value": 1}]}),
        ("DELETE", f"{base}/streams/b", None),
        ("POST", f"{base}/update", {"values": {"a": 1, "b": 1}}),
        ("POST", f"{base}/updates", {"values": {"b": [{"timestamp": TS, "value": 1}]}}),
    ]
    assert unexpected(await statuses(stack, key, refused), 403, "Forbidden") == {}
    status, body, _ = await stack.request("GET", f"{base}/streams/b/values", key=master)
    assert [v["value"] for v in body["values"]] == [9.0], "a refused write reached stream b"


async def test_another_account_finds_no_device(stack: Stack) -> None:
    _, owner = await stack.new_account("owner")
    _, stranger = await stack.new_account("stranger")
    device = await create_device(stack, owner, serial="sn-1")
    routes = []
    for base in (f"/v2/devices/{device['id']}", "/v2/devices/serial/sn-1"):
        routes += read_routes(base) + write_routes(base) + master_routes(base)
    assert unexpected(await statuses(stack, stranger, routes), 404, DEVICE_NOT_FOUND) == {}
    # Its lists and tags do not show it either.
    _, body, _ = await stack.request("GET", "/v2/devices", key=stranger)
    assert body["total"] == 0
    _, body, _ = await stack.request("POST", "/v2/devices/search", key=stranger,
                                     json={"ids": device["id"]})  # fmt: skip
    assert body["total"] == 0
    # Nothing changed.
    status, body, _ = await stack.request("GET", f"/v2/devices/{device['id']}", key=owner)
    assert (status, body["name"], body["metadata"]) == (200, "device", {"room": "7"})


async def test_public_device_is_readable_without_a_key(stack: Stack) -> None:
    _, owner = await stack.new_account("owner")
    public = await create_device(stack, owner, visibility="public")
    private = await create_device(stack, owner)
    public_base, private_base = f"/v2/devices/{public['id']}", f"/v2/devices/{private['id']}"

    found = await statuses(stack, None, read_routes(public_base))
    assert unexpected(found, 200) == {}
    status, body, _ = await stack.request("GET", public_base)
    assert "key" not in body, "an anonymous reader was shown the device key"
    status, body, _ = await stack.request("GET", f"{public_base}/streams/a/values")
    assert body["values"] == [{"timestamp": TS, "value": 1.0}]
    # Any account's key reads it too, but cannot change it.
    _, stranger = await stack.new_account("stranger")
    assert unexpected(await statuses(stack, stranger, read_routes(public_base)), 200) == {}
    found = await statuses(stack, stranger, write_routes(public_base) + master_routes(public_base))
    assert unexpected(found, 404, DEVICE_NOT_FOUND) == {}

    # Without a key: no private device, no writes, an unknown key is no key.
    assert unexpected(await statuses(stack, None, read_routes(private_base)), 401) == {}
    routes = write_routes(public_base) + master_routes(public_base) + write_routes(private_base)
    assert unexpected(await statuses(stack, None, routes), 401, "Unauthorized") == {}
    status, _, _ = await stack.request("GET", "/v2/devices/" + "0" * 32)
    assert status == 401
    status, _, _ = await stack.request("GET", public_base, key="f" * 32)
    assert status == 401
    # A device made private again is no longer readable.
    status, _, _ = await stack.request(
        "PUT", public_base, key=owner, json={"visibility": "private"}
    )
    assert status == 204
    status, _, _ = await stack.request("GET", f"{public_base}/streams")
    assert status == 401
    status, body, _ = await stack.request("GET", public_base, key=owner)
    assert (body["name"], body["metadata"]) == ("device", {"room": "7"}), "an anonymous write"


async def test_disabled_device_refuses_its_device_key(stack: Stack) -> None:
    _, master = await stack.new_account()
    device = await create_device(stack, master)
    base, key = f"/v2/devices/{device['id']}", device["key"]
    status, _, _ = await stack.request("PUT", base, key=master, json={"status": "disabled"})
    assert status == 204

    found = await statuses(stack, key, read_routes(base) + write_routes(base))
    assert unexpected(found, 403, "Forbidden") == {}
    # The master key still sees and uses it.
    status, body, _ = await stack.request("GET", base, key=master)
    assert (status, body["status"]) == (200, "disabled")
    status, _, _ = await stack.request("PUT", f"{base}/streams/a/value", key=master,
                                       json={"value": 5, "timestamp": TS})  # fmt: skip
    assert status == 202
    _, body, _ = await stack.request("GET", "/v2/devices/search", key=master,
                                     params={"status": "disabled"})  # fmt: skip
    assert [d["id"] for d in body["devices"]] == [device["id"]]

    status, _, _ = await stack.request("PUT", base, key=master, json={"status": "enabled"})
    assert status == 204
    status, body, _ = await stack.request("GET", f"{base}/streams/a/values", key=key)
    assert (status, body["values"]) == (200, [{"timestamp": TS, "value": 5.0}])
    status, _, _ = await stack.request("PUT", f"{base}/streams/a/value", key=key, json={"value": 6})
    assert status == 202


async def test_disabled_device_answer_explains_itself(stack: Stack) -> None:
    """Error bodies carry a human explanation (spec §1.13), not an internal reason code."""
    _, master = await stack.new_account()
    device = await create_device(stack, master)
    base = f"/v2/devices/{device['id']}"
    status, _, _ = await stack.request("PUT", base, key=master, json={"status": "disabled"})
    assert status == 204
    status, body, _ = await stack.request("GET", base, key=device["key"])
    assert status == 403
    assert body["message"] == "Forbidden"
    assert body["description"] != "DEVICE_DISABLED"
    assert "disabled" in body["description"].lower() and " " in body["description"]


async def test_writes_to_one_device_are_limited_per_second(limited_stack: Stack) -> None:
    """limited_stack: 3 writes/s per device (8 requests/s per key)."""
    stack = limited_stack
    _, master = await stack.new_account()
    made = []
    for name in ("one", "two"):
        status, body, _ = await stack.request(
            "POST", "/v2/devices", key=master,
            json={"name": name, "visibility": "private", "serial": name},
        )  # fmt: skip
        assert status == 201, body
        made.append(body)
    one, two = made
    for device in (one, two):
        status, _, _ = await stack.request(
            "PUT", f"/v2/devices/{device['id']}/streams/t", key=device["key"], json={}
        )
        assert status == 201

    async def write(device: dict[str, Any], path: str | None = None) -> tuple[int, Any, Any]:
        return await stack.request(
            "PUT", (path or f"/v2/devices/{device['id']}") + "/streams/t/value",
            key=device["key"], json={"value": 1},
        )  # fmt: skip

    for _ in range(2):
        await next_second()
        answers = [await write(one) for _ in range(4)]
        other_device = await write(two)
        reads = [await stack.request("GET", f"/v2/devices/{one['id']}/streams/t",
                                     key=one["key"]) for _ in range(2)]  # fmt: skip
        windows = {h["X-RateLimit-Reset"] for _, _, h in [*answers, other_device, *reads]}
        if len(windows) == 1:
            break
    else:
        raise AssertionError("could not fit the burst into one second")
    assert [status for status, _, _ in answers] == [202, 202, 202, 429]
    for i, (_, _, headers) in enumerate(answers[:3]):
        assert headers["X-RateLimit-Limit"] == "3"
        assert headers["X-RateLimit-Remaining"] == str(2 - i)
    status, body, headers = answers[3]
    assert set(body) == {"message"} and "3" in body["message"]
    assert headers["X-RateLimit-Limit"] == "3" and headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 2
    # Another device of the same key still takes writes, and reads are not device writes.
    assert other_device[0] == 202
    assert [status for status, _, _ in reads] == [200, 200]

    # The next second takes writes again.
    async with asyncio.timeout(5):
        while True:
            if (await write(one))[0] == 202:
                break
            await asyncio.sleep(0.05)

    # A serial path is counted per serial.
    for _ in range(2):
        await next_second()
        by_serial = [await write(two, "/v2/devices/serial/two") for _ in range(4)]
        if len({h["X-RateLimit-Reset"] for _, _, h in by_serial}) == 1:
            break
    assert [status for status, _, _ in by_serial] == [202, 202, 202, 429]


async def next_second() -> None:
    """Sleep to just after the next whole second, where a fresh rate-limit window opens."""
    await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.005)
