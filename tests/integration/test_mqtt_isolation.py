"""Isolation between keys on the broker, tested by what is delivered.

Mosquitto acknowledges every subscription, allowed or not (SUBACK says nothing), so these tests
look at what arrives. Ordering makes most checks exact: messages from one publisher reach a
subscriber in order, so whatever the broker routed before a client's own answer arrived before
it. Where a check needs an absence with no such anchor, it waits a bounded time.
"""

from __future__ import annotations

import asyncio

import orjson

from tests.support.mqtt import MqttStack, new_device

QUIET = 0.5  # seconds within which a stray delivery would have arrived on loopback

SNOOPING = ["#", "+/+/+", "m2x/#", "m2x/+/responses", "m2x/+/commands", "m2x/+/requests",
            "$share/snoop/m2x/#", "$SYS/#"]  # fmt: skip


async def test_a_key_receives_nothing_meant_for_another(mqtt: MqttStack) -> None:
    _, a_id, a_key = await new_device(mqtt)
    b_master, b_id, b_key = await new_device(mqtt)
    async with mqtt.device(a_key) as snoop, mqtt.device(b_key) as victim:
        await snoop.subscribe(*SNOOPING, f"m2x/{b_key}/#", f"m2x/{b_key}/responses")
        for _ in range(3):
            assert (await victim.request("GET", f"/v2/devices/{b_id}"))["status"] == 200

        # Spoofing: B's request topic (acting with B's key), B's response and command topics.
        spoof = {"id": "spoof", "method": "PUT", "resource": f"/v2/devices/{b_id}/streams/x",
                 "body": {"type": "numeric"}}  # fmt: skip
        await snoop.publish(orjson.dumps(spoof), topic=f"m2x/{b_key}/requests")
        fake = {"id": "fake", "status": 200, "body": {}}
        await snoop.publish(orjson.dumps(fake), topic=f"m2x/{b_key}/responses")
        await snoop.publish(b'{"id": "cmd"}', topic=f"m2x/{b_key}/commands")

        # The snoop's own answer comes after whatever the broker routed to it before.
        own = await snoop.request("GET", f"/v2/devices/{a_id}")
        assert own["status"] == 200
        # B's next answer comes after anything the snoop managed to publish to B.
        assert (await victim.request("GET", f"/v2/devices/{b_id}"))["status"] == 200
        await asyncio.sleep(QUIET)  # the spoofed request has no ordering anchor

        # Its own answer, once per matching subscription (MQTT 5), and nothing else.
        assert {(topic, body["id"]) for topic, body in snoop.received} == {
            (f"m2x/{a_key}/responses", own["id"])
        }
        assert all(body["id"] not in ("spoof", "fake", "cmd") for _, body in victim.received)
    status, _, _ = await mqtt.stack.request("GET", f"/v2/devices/{b_id}/streams/x", key=b_master)
    assert status == 404


async def test_a_device_cannot_take_requests_away_from_the_adapters(mqtt: MqttStack) -> None:
    _, victim_id, victim_key = await new_device(mqtt)
    _, _, thief_key = await new_device(mqtt)
    async with mqtt.device(thief_key) as thief, mqtt.device(victim_key) as victim:
        # Joining a share group takes every other message of the group; the adapters' group
        # is a generated secret, so a thief can only form groups of its own.
        await thief.subscribe("$share/m2x/m2x/+/requests", "$share/m2x/#", "$share/m2x-/#")
        ids = [await victim.send("GET", f"/v2/devices/{victim_id}") for _ in range(20)]
        answers = [await victim.response(request_id) for request_id in ids]
        assert {answer["status"] for answer in answers} == {200}
        mine = await thief.request("GET", "/v2/time")
        assert {(topic, body["id"]) for topic, body in thief.received} == {
            (f"m2x/{thief_key}/responses", mine["id"])
        }
