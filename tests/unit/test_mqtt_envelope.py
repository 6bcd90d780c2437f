"""MQTT envelopes (spec §21): request parsing, answers, command deliveries."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
import pytest

from adapters.api.errors import BadRequest, PayloadTooLarge
from adapters.api.messages import ApiResponse
from adapters.mqtt.commands import command_message, relay_commands
from adapters.mqtt.envelope import Unanswerable, key_of, parse_request, response_payload
from m2x.storage.v1 import storage_pb2 as pb

BASE = "https://m2x.example.com"


def parse(document: Any, max_bytes: int = 10_000) -> Any:
    return parse_request(orjson.dumps(document), "k1", BASE, max_bytes)


def test_key_comes_from_the_request_topic_only() -> None:
    assert key_of("m2x/abc/requests") == "abc"
    for topic in ("m2x/abc/responses", "m2x//requests", "x/abc/requests", "m2x/a/b/requests"):
        assert key_of(topic) is None


def test_request_with_query_string_and_get_body() -> None:
    envelope = parse({
        "id": "r1", "method": "get", "resource": "/v2/devices/d%201/streams?limit=5&q=",
        "body": {"start": "2024-01-01T00:00:00Z", "limit": 10, "streams": ["a", "b"],
                 "include": True, "skip": None},
    })  # fmt: skip
    request = envelope.request
    assert (envelope.id, envelope.failure) == ("r1", None)
    assert (request.method, request.path) == ("GET", "/v2/devices/d 1/streams")
    assert request.query == {"limit": "10", "q": "", "start": "2024-01-01T00:00:00Z",
                             "streams": "a,b", "include": "true"}  # fmt: skip
    assert (request.credential, request.client, request.base_url) == ("k1", "mqtt:k1", BASE)


def test_write_bodies_stay_bodies() -> None:
    body = {"values": [{"timestamp": "2024-01-01T00:00:00Z", "value": 1}]}
    envelope = parse({"id": 12, "method": "POST", "resource": "v2/x/values", "body": body})
    assert envelope.id == 12
    assert (envelope.request.path, envelope.request.query, envelope.request.body) == (
        "/v2/x/values",
        {},
        body,
    )


@pytest.mark.parametrize("payload", [b"nope", b"\xff", b"[]", b"3", b"{}", b'{"id": null}',
                                     b'{"id": false}', b'{"id": {"a": 1}}'])  # fmt: skip
def test_payloads_without_an_id_are_unanswerable(payload: bytes) -> None:
    with pytest.raises(Unanswerable):
        parse_request(payload, "k1", BASE, 100)


@pytest.mark.parametrize("document", [{"id": "x"}, {"id": "x", "method": "GET"},
                                      {"id": "x", "resource": "/v2/time"},
                                      {"id": "x", "method": "", "resource": "/v2/time"},
                                      {"id": "x", "method": "GET", "resource": ["/v2"]}])  # fmt: skip
def test_missing_method_or_resource_is_a_bad_request(document: dict[str, Any]) -> None:
    assert isinstance(parse(document).failure, BadRequest)


def test_oversized_requests_are_refused() -> None:
    envelope = parse({"id": 1, "method": "POST", "resource": "/v2/x", "body": {"a": "b" * 50}}, 40)
    assert isinstance(envelope.failure, PayloadTooLarge)


def test_answers() -> None:
    assert orjson.loads(response_payload("a", ApiResponse(202, {"status": "accepted"}), 1000)) == {
        "id": "a", "status": 202, "body": {"status": "accepted"}
    }  # fmt: skip
    assert orjson.loads(response_payload(7, ApiResponse(204), 1000)) == {
        "id": 7, "status": 204, "body": None
    }  # fmt: skip
    text = ApiResponse(200, "1700000000", content_type="text/plain")
    assert orjson.loads(response_payload(1, text, 1000))["body"] == "1700000000"
    huge = orjson.loads(response_payload(1, ApiResponse(200, {"x": "y" * 500}), 300))
    assert huge["status"] == 500 and "HTTP" in huge["body"]["description"]


def delivery(**fields: Any) -> pb.CommandDelivery:
    defaults = dict(device_id="0a1b", device_key="dkey", id="c1", name="SAY",
                    data_json='{"message": "hello"}', sent_at_ms=1447156800000)  # fmt: skip
    return pb.CommandDelivery(**{**defaults, **fields})


def test_command_message_has_what_the_official_clients_read() -> None:
    topic, payload = command_message(delivery(), BASE + "/")
    assert topic == "m2x/dkey/commands"
    message = orjson.loads(payload)
    assert message == {
        "id": "c1", "url": f"{BASE}/v2/devices/0a1b/commands/c1", "name": "SAY",
        "data": {"message": "hello"}, "sent_at": "2015-11-10T12:00:00.000Z",
    }  # fmt: skip
    assert message["url"].split("/")[-3] == "0a1b"  # where the Python client finds the device
    assert orjson.loads(command_message(delivery(data_json=""), BASE)[1])["data"] is None


class FakeCall:
    """A WatchCommands stream: initial metadata, then the deliveries, then a failure."""

    def __init__(self, deliveries: list[pb.CommandDelivery]) -> None:
        self.deliveries = deliveries

    async def initial_metadata(self) -> Any:
        return ()

    async def __aiter__(self) -> Any:
        for item in self.deliveries:
            yield item
        raise FakeRpcError()


class FakeRpcError(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


class FakeStorage:
    def __init__(self, *streams: list[pb.CommandDelivery]) -> None:
        self.streams = list(streams)
        self.calls = 0

    def WatchCommands(self, request: Any, wait_for_ready: bool = False) -> FakeCall:
        self.calls += 1
        return FakeCall(self.streams.pop(0) if self.streams else [])


async def test_relay_publishes_each_delivery_and_survives_bad_ones_and_lost_feeds() -> None:
    storage = FakeStorage([delivery(id="c1"), delivery(id="c2", data_json="{bad")],
                          [delivery(id="c3", device_key="other")])  # fmt: skip
    published: list[tuple[str, dict[str, Any]]] = []
    done = asyncio.Event()

    async def publish(topic: str, payload: bytes) -> None:
        published.append((topic, orjson.loads(payload)))
        if len(published) == 2:
            done.set()

    relay = asyncio.create_task(relay_commands(storage, publish, BASE))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        relay.cancel()
    # c2's data is not JSON: logged and skipped; the feed reconnected for c3.
    assert [(topic, body["id"]) for topic, body in published] == [
        ("m2x/dkey/commands", "c1"),
        ("m2x/other/commands", "c3"),
    ]
    assert storage.calls == 2
