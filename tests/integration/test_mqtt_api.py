"""The MQTT API (spec §21) through a real Mosquitto and adapter: same answers as HTTP."""

from __future__ import annotations

from typing import Any

from tests.support.mqtt import V31, V311, MqttStack, new_device

ACCEPTED = {"status": "accepted"}


async def test_device_writes_and_reads_its_streams(mqtt: MqttStack) -> None:
    _, device_id, key = await new_device(mqtt)
    base = f"/v2/devices/{device_id}"
    async with mqtt.device(key) as device:
        answer = await device.request("PUT", f"{base}/streams/temp", {"type": "numeric"})
        assert answer["status"] == 201, answer
        assert answer["body"]["name"] == "temp"

        answer = await device.request("PUT", f"{base}/streams/temp/value", {"value": 21.5})
        assert answer == {"id": answer["id"], "status": 202, "body": ACCEPTED}

        values = [{"timestamp": f"2024-01-01T00:00:0{i}.000Z", "value": i} for i in range(3)]
        answer = await device.request("POST", f"{base}/streams/temp/values", {"values": values})
        assert answer["status"] == 202, answer

        update = {"timestamp": "2024-01-02T00:00:00.000Z", "values": {"temp": 30}}
        answer = await device.request("POST", f"{base}/update", update)
        assert answer["status"] == 202, answer

        # GET parameters in the body (the Python client) and in the resource (PHP, C) alike.
        by_body = await device.request(
            "GET", f"{base}/streams/temp/values", {"limit": 2, "start": "2024-01-01T00:00:00Z"}
        )
        by_query = await device.request(
            "GET", f"{base}/streams/temp/values?limit=2&start=2024-01-01T00:00:00Z"
        )
        triggers = await device.request("GET", f"{base}/triggers")  # the triggers service
    assert by_body["status"] == 200, by_body
    assert by_body["body"] == by_query["body"]
    # Newest first: the value written "now", then the update of 2024-01-02.
    assert [v["value"] for v in by_body["body"]["values"]] == [21.5, 30.0]

    status, http_body, _ = await mqtt.stack.request(
        "GET", f"{base}/streams/temp/values?limit=2&start=2024-01-01T00:00:00Z", key=key
    )
    assert (status, http_body) == (200, by_query["body"])
    status, http_body, _ = await mqtt.stack.request("GET", f"{base}/triggers", key=key)
    assert (triggers["status"], triggers["body"]) == (status, http_body)
    assert status == 200


async def test_official_client_protocol_round_trip(mqtt: MqttStack) -> None:
    # m2x-mqtt: MQTT 3.1.1, QoS 0, user name = key, no password; PHP: integer ids, RETAIN set.
    _, device_id, key = await new_device(mqtt)
    async with mqtt.device(key, protocol=V311) as device:
        await device.publish(
            b'{"id": 7, "method": "get", "resource": "/v2/devices/%s", "agent": "x"}'
            % device_id.encode(),
            retain=True,
        )
        answer = await device.response(7)
        assert answer["status"] == 200 and answer["body"]["id"] == device_id
        answer = await device.request("DELETE", f"/v2/devices/{device_id}/streams/none")
        assert answer["status"] == 404
    async with mqtt.device(key, protocol=V31) as device:  # the C client speaks MQTT 3.1
        assert (await device.request("GET", f"/v2/devices/{device_id}"))["status"] == 200


async def test_error_answers_are_the_http_ones(mqtt: MqttStack) -> None:
    _, device_id, key = await new_device(mqtt)
    _, other_id, _ = await new_device(mqtt)
    cases: list[tuple[str, str, str, Any]] = [
        ("unknown-key-0000", "GET", f"/v2/devices/{device_id}", None),  # 401
        (key, "GET", f"/v2/devices/{other_id}", None),  # 403: device key of another device
        (key, "GET", f"/v2/devices/{device_id}/streams/missing", None),  # 404
        (key, "PUT", f"/v2/devices/{device_id}/streams/t", {"type": "colour"}),  # 422
        (key, "GET", "/v2/nowhere", None),  # 404 of an unknown path
    ]
    statuses = []
    for credential, method, path, body in cases:
        async with mqtt.device(credential) as device:
            answer = await device.request(method, path, body)
        status, http_body, _ = await mqtt.stack.request(method, path, key=credential, json=body)
        assert (answer["status"], answer["body"]) == (status, http_body), (method, path)
        statuses.append(status)
    assert statuses == [401, 403, 404, 422, 404]


async def test_malformed_envelopes(mqtt: MqttStack) -> None:
    _, device_id, key = await new_device(mqtt)
    async with mqtt.device(key) as device:
        # Without a readable id nothing can be answered: dropped, and the adapter goes on.
        for payload in (b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"method": "GET"}',
                        b'{"id": true, "method": "GET", "resource": "/v2/time"}',
                        b'{"id": null, "method": "GET", "resource": "/v2/time"}'):  # fmt: skip
            await device.publish(payload)
        for payload in (b'{"id": "a1"}', b'{"id": "a2", "method": "GET"}',
                        b'{"id": 3, "resource": "/v2/time"}',
                        b'{"id": 4.5, "method": 1, "resource": "/v2/time"}'):  # fmt: skip
            await device.publish(payload)
        ok = await device.request("GET", f"/v2/devices/{device_id}")
        assert ok["status"] == 200
        for request_id in ("a1", "a2", 3, 4.5):
            answer = await device.response(request_id)
            assert answer["status"] == 400, answer
            assert answer["body"]["message"] == "Bad Request"
            assert "method" in answer["body"]["description"]
        answer = await device.request("POST", f"/v2/devices/{device_id}/updates", [1, 2])
        assert answer["status"] == 400
        assert answer["body"]["description"] == "The request body must be a JSON object."
        answered = [body["id"] for topic, body in device.received if topic.endswith("/responses")]
    assert sorted(map(str, answered)) == sorted(map(str, [ok["id"], "a1", "a2", 3, 4.5,
                                                          answer["id"]]))  # fmt: skip
