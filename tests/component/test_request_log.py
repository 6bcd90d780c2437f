"""The device request log (spec §6): the newest requests that targeted a device."""

from __future__ import annotations

from tests.support.stack import Stack
from tests.support.waiting import eventually


async def test_log_lists_requests_to_the_device_newest_first(stack: Stack) -> None:
    _, master = await stack.new_account()
    _, device, _ = await stack.request(
        "POST",
        "/v2/devices",
        key=master,
        json={"name": "logged", "visibility": "private", "serial": "L1"},
    )
    base = f"/v2/devices/{device['id']}"
    await stack.request("PUT", base + "/streams/t", key=master, json={})
    await stack.request("PUT", base + "/streams/t/value", key=master, json={"value": "x"})  # 422
    await stack.request("GET", "/v2/devices/serial/L1/streams", key=master)

    async def log() -> list[dict]:
        status, body, _ = await stack.request("GET", base + "/log", key=master)
        assert status == 200
        # Reading the log is itself a request to the device, and is logged too.
        return [e for e in body["requests"] if not e["path"].endswith("/log")]

    entries = await eventually(log, lambda e: len(e) >= 3)
    assert [(e["http_method"], e["status"], e["path"]) for e in entries[:3]] == [
        ("GET", 200, "/devices/serial/L1/streams"),
        ("PUT", 422, f"/devices/{device['id']}/streams/t/value"),
        ("PUT", 201, f"/devices/{device['id']}/streams/t"),
    ]
    assert all(e["method"] == e["http_method"] and e["timestamp"].endswith("Z") for e in entries)
    # Another account's requests never show up, and its key cannot read the log.
    _, other = await stack.new_account("other")
    status, _, _ = await stack.request("GET", base + "/log", key=other)
    assert status == 404
