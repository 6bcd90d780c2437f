"""The Triggers API of seed 001 through the real adapter: CRUD, 422/404 bodies, key access,
the log and its 100-entry cap, the test endpoint, and a callback that is down for a while."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from adapters.api.errors import NOT_FOUND_DESCRIPTION
from m2x.runtime.grpc_client import open_channel
from m2x.triggers.v1 import triggers_pb2 as tpb
from m2x.triggers.v1 import triggers_pb2_grpc
from tests.support.stack import Stack
from tests.support.triggers import new_device, trigger_stack
from tests.support.waiting import eventually
from tests.support.webhooks import receiver

SEED_CREATE = {
    "name": "High temperature",
    "conditions": {"temperature": {"gt": 30, "reset": 28}, "humidity": {"changed": True}},
    "frequency": "continuous",
    "timeframe": 300,
    "callback_url": "http://example.com",
    "status": "enabled",
    "send_location": True,
    "notify_on_reset": False,
    "custom_data": '{ "foo": "bar" }',
}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with trigger_stack(tmp_path_factory.mktemp("triggers-api")) as running:
        yield running


async def test_create_view_list_update_delete(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "humidity")
    status, created, headers = await stack.request(
        "POST", d.base + "/triggers", key=d.key, json=SEED_CREATE
    )
    assert status == 201
    url = stack.url + f"{d.base}/triggers/{created['id']}"
    assert headers["Location"] == url
    assert created["id"].isdigit()
    assert created == {
        "id": created["id"], "name": "High temperature",
        "conditions": SEED_CREATE["conditions"], "frequency": "continuous", "timeframe": 300,
        "callback_url": "http://example.com/", "url": url, "status": "enabled",
        "activated": False, "send_location": True, "notify_on_reset": False,
        "custom_data": '{ "foo": "bar" }', "payload_version": 2,
        "created": created["created"], "updated": created["updated"],
    }  # fmt: skip
    assert list(created) == ["id", "name", "conditions", "frequency", "timeframe",
                             "callback_url", "url", "status", "activated", "send_location",
                             "notify_on_reset", "custom_data", "payload_version", "created",
                             "updated"]  # fmt: skip
    assert (await d.call("GET", f"/triggers/{created['id']}")) == (200, created)
    assert (await d.call("GET", "/triggers")) == (200, {"triggers": [created]})
    serial = f"/v2/devices/serial/{d.serial}/triggers"
    assert (await stack.request("GET", serial, key=d.key))[1] == {"triggers": [created]}

    change = {"name": "renamed", "frequency": "periodic", "interval": 60, "send_location": False}
    assert (await d.call("PUT", f"/triggers/{created['id']}", change)) == (204, None)
    _, view = await d.call("GET", f"/triggers/{created['id']}")
    assert (view["name"], view["frequency"], view["interval"], view["send_location"]) == (
        "renamed", "periodic", 60, False,
    )  # fmt: skip
    assert view["conditions"] == created["conditions"] and view["updated"] >= created["updated"]

    _, device = await d.call("GET", "")
    assert device["triggers"] == {"count": 1, "url": stack.url + d.base + "/triggers"}
    assert (await d.call("DELETE", f"/triggers/{created['id']}")) == (204, None)
    assert await d.call("GET", f"/triggers/{created['id']}") == (
        404, {"message": "Trigger Not Found", "description": NOT_FOUND_DESCRIPTION},
    )  # fmt: skip
    assert (await d.call("GET", "/triggers")) == (200, {"triggers": []})

    # Deleting the device deletes its triggers.
    await d.call("POST", "/triggers", SEED_CREATE)
    assert (await d.call("DELETE", ""))[0] == 204
    assert stack.triggers is not None
    channel = open_channel(stack.triggers.listen)
    try:
        stub = triggers_pb2_grpc.TriggersServiceStub(channel)
        owner = tpb.Owner(account_id=d.account_id, device_id=d.id)
        reply = await stub.CountTriggers(tpb.CountTriggersRequest(owners=[owner]))
    finally:
        await channel.close()
    assert list(reply.counts) == [0]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"name": ["not_present"], "conditions": ["not_present"],
              "frequency": ["not_present"], "callback_url": ["not_present"]}),
        ({**SEED_CREATE, "conditions": {"pressure": {"gt": 1}}}, {"conditions": ["not_valid"]}),
        ({**SEED_CREATE, "conditions": {"label": {"lt": 1}}}, {"conditions": ["not_valid"]}),
        ({**SEED_CREATE, "timeframe": "x"}, {"timeframe": ["not_numeric"]}),
        ({**SEED_CREATE, "timeframe": 90_000}, {"timeframe": ["not_valid"]}),
        ({**SEED_CREATE, "callback_url": "example"}, {"callback_url": ["not_valid"]}),
        ({**SEED_CREATE, "status": "on"}, {"status": ["not_valid"]}),
        ({**SEED_CREATE, "frequency": "sometimes"}, {"frequency": ["not_valid"]}),
        ({**SEED_CREATE, "frequency": "periodic"}, {"interval": ["not_present"]}),
        ({**SEED_CREATE, "frequency": "periodic", "interval": "x"}, {"interval": ["not_numeric"]}),
        ({**SEED_CREATE, "frequency": "periodic", "interval": 0}, {"interval": ["not_valid"]}),
    ],
)  # fmt: skip
async def test_validation_failures(
    stack: Stack, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    d = await new_device(stack, "temperature", "humidity", ("label", "alphanumeric"))
    status, answer = await d.call("POST", "/triggers", body)
    assert (status, answer) == (422, {"message": "Validation Failed", "errors": errors})


async def test_update_validation_and_not_found(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "humidity")
    _, created = await d.call("POST", "/triggers", SEED_CREATE)
    status, answer = await d.call("PUT", f"/triggers/{created['id']}", {"conditions": None})
    assert (status, answer) == (422, {"message": "Validation Failed",
                                      "errors": {"conditions": ["not_present"]}})  # fmt: skip
    for method, path in (("GET", "/triggers/999999"), ("PUT", "/triggers/999999"),
                         ("DELETE", "/triggers/999999"), ("POST", "/triggers/999999/test")):  # fmt: skip
        status, answer = await d.call(method, path, {} if method != "GET" else None)
        assert (status, answer["message"]) == (404, "Trigger Not Found"), (method, path)
    other = await new_device(stack, "temperature", "humidity")
    # Another account's trigger id on this device: not found either.
    assert (await other.call("GET", f"/triggers/{created['id']}"))[0] == 404
    missing = "/v2/devices/0123456789abcdef0123456789abcdef/triggers"
    status, _, _ = await stack.request("GET", missing, key=d.key)
    assert status == 404


async def test_device_keys_reach_their_own_device_only(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "humidity")
    status, created = await d.call("POST", "/triggers", SEED_CREATE, key=d.device_key)
    assert status == 201
    for method, path in (("GET", "/triggers"), ("GET", f"/triggers/{created['id']}"),
                         ("GET", "/triggers/log")):  # fmt: skip
        assert (await d.call(method, path, key=d.device_key))[0] == 200
    assert (await d.call("PUT", f"/triggers/{created['id']}", {"name": "x"},
                         key=d.device_key))[0] == 204  # fmt: skip
    # A sibling device of the same account: its key may not touch this device's triggers.
    status, sibling, _ = await stack.request(
        "POST", "/v2/devices", key=d.key, json={"name": "sibling", "visibility": "private"}
    )
    status, answer = await d.call("GET", "/triggers", key=sibling["key"])
    assert status == 403, answer
    status, _ = await d.call("DELETE", f"/triggers/{created['id']}", key=sibling["key"])
    assert status == 403
    # Another account's master key: the device is not found (seed: "belongs to another").
    stranger = await new_device(stack)
    status, answer = await d.call("GET", "/triggers", key=stranger.key)
    assert (status, answer["message"]) == (404, "Device Not Found")
    assert (await d.call("DELETE", f"/triggers/{created['id']}", key=d.device_key))[0] == 204


async def test_log_keeps_the_100_newest_with_response_codes(stack: Stack) -> None:
    d = await new_device(stack, "n")
    async with receiver() as hook:
        t = await d.trigger(hook.url, name="every", conditions={"n": {"gte": 0}})
        await d.values("n", *((i, i) for i in range(1, 106)))
        await hook.wait_for(105)
        assert (await d.call("DELETE", f"/triggers/{t['id']}"))[0] == 204  # the log stays

        async def log() -> list[dict[str, Any]]:
            status, body = await d.call("GET", "/triggers/log")
            assert status == 200
            return body["entries"]  # type: ignore[no-any-return]

        entries = await eventually(log, lambda e: e and e[0]["values"]["n"]["value"] == 105)
        assert len(entries) == 100
        assert [e["values"]["n"]["value"] for e in entries] == list(range(105, 5, -1))
        assert all(e["response_code"] == 200 and e["trigger"] == "every" for e in entries)
        assert set(entries[0]) == {"event", "device", "trigger", "conditions", "values",
                                   "timeframe", "custom_data", "timestamp", "response_code"}  # fmt: skip
    # Attempts that nothing answered are logged with response_code 0 (and retried).
    dead = await new_device(stack, "n")
    async with receiver() as gone:
        await gone.down()
        await dead.trigger(gone.url, conditions={"n": {"lt": 0}})
    await dead.values("n", (0, -1))
    failed = await eventually(
        lambda: dead.call("GET", "/triggers/log"), lambda r: len(r[1]["entries"]) >= 2
    )
    assert {e["response_code"] for e in failed[1]["entries"]} == {0}
    assert failed[1]["entries"][0]["values"] == failed[1]["entries"][1]["values"]


async def test_the_test_endpoint(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "humidity")
    await d.stream("temperature", symbol="ºC")
    async with receiver() as hook:
        body = {**SEED_CREATE, "callback_url": hook.url, "conditions": {
            "temperature": {"gt": 30, "reset": 28}, "humidity": {"gte": 80, "lte": 90}}}  # fmt: skip
        _, t = await d.call("POST", "/triggers", body)
        status, answer = await d.call("POST", f"/triggers/{t['id']}/test")
        assert status == 200
        assert answer["trigger"] == t and answer["success"] is True
        assert answer["response"]["status"] == 200 and answer["response"]["body"] == "OK!"
        assert answer["response"]["headers"]["Content-Type"] == ["text/plain; charset=utf-8"]
        (sent,) = await hook.wait_for(1)
        values = {s: v["value"] for s, v in sent.body["values"].items()}
        assert values["temperature"] > 30 and 80 <= values["humidity"] <= 90
        assert sent.body["values"]["temperature"]["unit"] == "ºC"
        assert sent.body["event"] == "fired" and sent.body["trigger"] == "High temperature"

    for url, error in (
        (hook.url, "Could not connect to the callback URL."),  # the receiver is gone
        ("http://callback.invalid/hook", "Could not resolve the callback URL."),
        ("http://169.254.169.254/latest", "The callback URL points to a network that is not allowed."),
    ):  # fmt: skip
        assert (await d.call("PUT", f"/triggers/{t['id']}", {"callback_url": url}))[0] == 204
        status, answer = await d.call("POST", f"/triggers/{t['id']}/test")
        assert status == 200
        assert answer == {"trigger": {**answer["trigger"], "callback_url": url},
                          "success": False, "error": error}  # fmt: skip
    log = (await d.call("GET", "/triggers/log"))[1]["entries"]
    assert [e["response_code"] for e in log] == [0, 0, 0, 200]


async def test_callback_down_for_a_while(stack: Stack) -> None:
    d = await new_device(stack, "n")
    async with receiver() as hook:
        await hook.down()
        await d.trigger(hook.url, conditions={"n": {"gt": 0}})
        await d.values("n", (0, 1), (1, 2), (2, 3))

        async def log() -> list[int]:
            return [
                e["response_code"] for e in (await d.call("GET", "/triggers/log"))[1]["entries"]
            ]

        await eventually(log, lambda codes: codes.count(0) >= 6)  # each retried at least once
        await hook.up()
        received = await hook.wait_for(3)
        assert sorted(r.body["values"]["n"]["value"] for r in received) == [1, 2, 3]
        codes = await eventually(log, lambda codes: codes.count(200) == 3)
        assert codes.count(0) >= 6
        # A callback answering 5xx is retried too, until it answers 2xx.
        hook.status = 503
        await d.values("n", (3, 4))
        await hook.wait_attempts(hook.attempts + 2)
        hook.status = 200
        (*_, last) = await hook.wait_for(4)
        assert last.body["values"]["n"]["value"] == 4
        assert 503 in await log()


async def test_a_hanging_callback_delays_neither_ingest_nor_other_triggers(stack: Stack) -> None:
    d = await new_device(stack, "n")
    async with receiver() as stuck, receiver() as fine:
        stuck.hold()
        await d.trigger(stuck.url, name="stuck", conditions={"n": {"gt": 0}})
        await d.trigger(fine.url, name="fine", conditions={"n": {"gt": 0}})
        for second in range(5):
            started = time.perf_counter()
            await d.values("n", (second, second + 1))
            assert time.perf_counter() - started < 2.0  # the 202 does not wait for callbacks
        received = await fine.wait_for(5, within=5.0)
        assert [r.body["values"]["n"]["value"] for r in received] == [1, 2, 3, 4, 5]
        assert stuck.attempts >= 1 and not stuck.received
