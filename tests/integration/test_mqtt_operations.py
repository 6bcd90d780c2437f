"""The MQTT path in operation: replicas sharing the load, key changes, broker restarts."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from tests.integration.conftest import StartUp, processes_mentioning
from tests.support.mqtt import Device, device_session, new_device, start_mqtt_stack
from tests.support.waiting import eventually

QUIET = 0.5  # seconds within which a duplicate answer would have arrived on loopback


async def test_two_replicas_share_the_requests_and_answer_each_once(tmp_path: Path) -> None:
    async with start_mqtt_stack(tmp_path, adapters=2) as mqtt:
        _, device_id, key = await new_device(mqtt)
        frozen = mqtt.adapters[1].process
        async with mqtt.device(key) as device:
            # Frozen, the second replica holds the requests the broker gives it: the first
            # answers its share only.
            frozen.send_signal(signal.SIGSTOP)
            try:
                ids = [await device.send("GET", f"/v2/devices/{device_id}") for _ in range(20)]
                await device.wait_for(lambda: sum(bool(device.responses_to(i)) for i in ids) >= 5)
                await asyncio.sleep(QUIET)
                answered = sum(bool(device.responses_to(i)) for i in ids)
                assert 5 <= answered < 20
            finally:
                frozen.send_signal(signal.SIGCONT)
            await device.wait_for(lambda: all(device.responses_to(i) for i in ids))

            # A replica that stops leaves the subscription: the other one answers everything.
            assert await mqtt.adapters[0].stop() == 0
            more = [await device.send("GET", f"/v2/devices/{device_id}") for _ in range(10)]
            await device.wait_for(lambda: all(device.responses_to(i) for i in more))
            await asyncio.sleep(QUIET)
            counts = Counter(body["id"] for topic, body in device.received)
        assert set(counts) == set(ids + more)
        assert set(counts.values()) == {1}


async def refused_soon(device: Device, path: str) -> dict[str, Any]:
    """The first 401 answer to GET `path`, which must come within a second.

    The change reaches the adapter by the keys service's feed, beside (not before) the HTTP
    answer that tells the test, so the next request may still overtake it by a few
    milliseconds; the principal cache would otherwise trust the key for minutes.
    """
    async with asyncio.timeout(1.0):
        while (answer := await device.request("GET", path))["status"] != 401:
            assert answer["status"] == 200, answer
    return answer


async def test_changed_keys_are_refused_at_once(tmp_path: Path) -> None:
    async with start_mqtt_stack(tmp_path) as mqtt:
        master, device_id, key = await new_device(mqtt)
        status, extra, _ = await mqtt.stack.request(
            "POST", "/v2/keys", key=master,
            json={"name": "extra", "permissions": ["GET"], "device": device_id},
        )  # fmt: skip
        assert status == 201, extra
        path = f"/v2/devices/{device_id}"
        async with mqtt.device(key) as device, mqtt.device(extra["key"]) as other:
            assert (await device.request("GET", path))["status"] == 200  # now cached
            assert (await other.request("GET", path))["status"] == 200

            status, new, _ = await mqtt.stack.request(
                "POST", f"/v2/keys/{key}/regenerate", key=master
            )
            assert status == 201
            answer = await refused_soon(device, path)
            assert answer["body"]["message"] == "Unauthorized"

            status, _, _ = await mqtt.stack.request(
                "DELETE", f"/v2/keys/{extra['key']}", key=master
            )
            assert status == 204
            await refused_soon(other, path)

        async with mqtt.device(new["key"]) as device:
            assert (await device.request("GET", path))["status"] == 200


async def test_retained_requests_are_not_run_again_by_a_new_adapter(tmp_path: Path) -> None:
    # The PHP client sets RETAIN on requests: the broker keeps each key's last request and
    # offers it to every new subscription.
    async with start_mqtt_stack(tmp_path) as mqtt:
        master, device_id, key = await new_device(mqtt)
        path = f"/v2/devices/{device_id}/streams/s"
        assert (await mqtt.stack.request("PUT", path, key=master, json={}))[0] == 201
        write = {"id": "once", "method": "PUT", "resource": f"{path}/value", "body": {"value": 1}}
        async with mqtt.device(key) as device:
            await device.publish(orjson.dumps(write), retain=True)
            assert (await device.response("once"))["status"] == 202

            await mqtt.adapters[0].stop()
            await mqtt.start_adapter()
            live = await device.request("PUT", f"{path}/value", {"value": 2})
            assert live["status"] == 202
            await asyncio.sleep(QUIET)  # a replay would have been answered by now
            assert len(device.responses_to("once")) == 1
        status, body, _ = await mqtt.stack.request("GET", f"{path}/values", key=master)
        assert (status, [v["value"] for v in body["values"]]) == (200, [2, 1])


async def answered_over_mqtt(port: int, key: str, resource: str, within: float = 30.0) -> int:
    """The status of a request, retried (with a new connection) until one is answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            async with device_session(port, key) as device:
                return int((await device.request("GET", resource, within=1.0))["status"])
        except (aiomqtt.MqttError, TimeoutError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_m2x_up_serves_mqtt_and_survives_a_broker_crash(
    start_up: StartUp, tmp_path: Path
) -> None:
    up = await start_up(tmp_path / "var")
    boot = up.bootstrap()
    port = int(boot["mqtt_url"].rpartition(":")[2])
    conf = str(up.data_dir / "broker" / "mosquitto.conf")
    assert await answered_over_mqtt(port, boot["master_key"], "/v2/devices", within=5) == 200
    # The adapter follows storage's command feed over real gRPC (commands arrive with the
    # commands API; until then this registration is what can be seen of the path).
    assert "command feed connected" in up.logs()
    (mosquitto,) = processes_mentioning(conf)
    wrapper = up.endpoints()["components"]["broker"]["pid"]

    os.kill(mosquitto, signal.SIGKILL)

    # The broker component restarts on the same ports; the adapter reconnects to it.
    assert await answered_over_mqtt(port, boot["master_key"], "/v2/devices") == 200

    async def broker_pid() -> int:
        return int(up.endpoints()["components"]["broker"]["pid"])

    # Clients may reach the new broker a moment before the supervisor has read its ready
    # line and rewritten the endpoints.
    await eventually(broker_pid, lambda pid: pid != wrapper)
    assert processes_mentioning(conf) != [mosquitto]
    assert "reconnected to broker" in up.logs()
