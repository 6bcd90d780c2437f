"""Streams of spec §7.2-§7.5 (object of §22.2) through the real adapter and storage service."""

from __future__ import annotations

import re
from typing import Any

from tests.support.stack import Stack

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STREAM_FIELDS = {
    "name", "display_name", "type", "value", "latest_value_at", "unit", "url", "created",
    "updated",
}  # fmt: skip
STREAM_NOT_FOUND = "Stream Not Found"


async def new_device(stack: Stack) -> tuple[str, str]:
    """(master key, device id) of a fresh account with one private device."""
    _, master = await stack.new_account()
    status, body, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "d", "visibility": "private"}
    )
    assert status == 201, body
    return master, body["id"]


def invalid(**errors: list[str]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": errors}


async def test_create_update_and_view_a_stream(stack: Stack) -> None:
    master, device = await new_device(stack)
    path = f"/v2/devices/{device}/streams/temperature"
    url = stack.url + path

    # An empty body creates a numeric stream.
    status, created, headers = await stack.request("PUT", path, key=master)
    assert status == 201, created
    assert headers["Location"] == url
    assert set(created) == STREAM_FIELDS
    assert {k: v for k, v in created.items() if k not in ("created", "updated")} == {
        "name": "temperature", "display_name": None, "type": "numeric", "value": None,
        "latest_value_at": None, "unit": {"label": None, "symbol": None}, "url": url,
    }  # fmt: skip
    assert ISO_MS.fullmatch(created["created"]) and created["updated"] == created["created"]
    status, viewed, _ = await stack.request("GET", path, key=master)
    assert (status, viewed) == (200, created)

    # An existing stream: 204, only the fields sent change.
    status, body, headers = await stack.request(
        "PUT", path, key=master,
        json={"unit": {"label": "celsius", "symbol": "C"}, "display_name": "Temp"},
    )  # fmt: skip
    assert (status, body) == (204, None)
    assert "Location" not in headers
    status, body, _ = await stack.request("PUT", path, key=master, json={"display_name": "Hall"})
    assert status == 204
    _, viewed, _ = await stack.request("GET", path, key=master)
    assert (viewed["display_name"], viewed["unit"], viewed["type"]) == (
        "Hall",
        {"label": "celsius", "symbol": "C"},
        "numeric",
    )
    assert viewed["created"] == created["created"] and viewed["updated"] >= created["updated"]

    # Every field given at creation.
    status, body, headers = await stack.request(
        "PUT", f"/v2/devices/{device}/streams/state", key=master,
        json={"type": "alphanumeric", "unit": {"label": "mode"}, "display_name": "State"},
    )  # fmt: skip
    assert status == 201
    assert (body["type"], body["unit"], body["display_name"]) == (
        "alphanumeric",
        {"label": "mode", "symbol": None},
        "State",
    )

    # The stream object follows the newest value written, whatever the order of the writes.
    for ts, value in (("2024-05-01T10:00:00Z", 21.5), ("2024-04-01T10:00:00Z", 3)):
        status, _, _ = await stack.request(
            "PUT", f"{path}/value", key=master, json={"value": value, "timestamp": ts}
        )
        assert status == 202
    _, viewed, _ = await stack.request("GET", path, key=master)
    assert (viewed["value"], viewed["latest_value_at"]) == (21.5, "2024-05-01T10:00:00.000Z")
    status, _, _ = await stack.request(
        "PUT", f"/v2/devices/{device}/streams/state/value", key=master, json={"value": "on"}
    )
    assert status == 202
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{device}/streams/state", key=master)
    assert viewed["value"] == "on" and ISO_MS.fullmatch(viewed["latest_value_at"])

    # A stream that holds values keeps its type; one without values may change it.
    status, body, _ = await stack.request("PUT", path, key=master, json={"type": "alphanumeric"})
    assert (status, body) == (422, invalid(type=["not_valid"]))
    status, _, _ = await stack.request(
        "PUT", f"/v2/devices/{device}/streams/empty", key=master, json={"type": "alphanumeric"}
    )
    assert status == 201
    status, _, _ = await stack.request(
        "PUT", f"/v2/devices/{device}/streams/empty", key=master, json={"type": "numeric"}
    )
    assert status == 204
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{device}/streams/empty", key=master)
    assert viewed["type"] == "numeric"

    _, device_body, _ = await stack.request("GET", f"/v2/devices/{device}", key=master)
    assert device_body["streams"]["count"] == 3


async def test_list_and_delete_streams(stack: Stack) -> None:
    master, device = await new_device(stack)
    status, body, _ = await stack.request("GET", f"/v2/devices/{device}/streams", key=master)
    assert (status, body) == (200, {"streams": []})
    for name in ("zeta", "alpha", "mid.dle-1_x"):
        status, _, _ = await stack.request(
            "PUT", f"/v2/devices/{device}/streams/{name}", key=master, json={}
        )
        assert status == 201, name
    status, _, _ = await stack.request(
        "POST", f"/v2/devices/{device}/streams/zeta/values", key=master,
        json={"values": [{"timestamp": "2024-01-01T00:00:00Z", "value": 1},
                         {"timestamp": "2024-01-02T00:00:00Z", "value": 2}]},
    )  # fmt: skip
    assert status == 202

    status, body, _ = await stack.request("GET", f"/v2/devices/{device}/streams", key=master)
    assert status == 200
    assert set(body) == {"streams"}
    assert [s["name"] for s in body["streams"]] == ["alpha", "mid.dle-1_x", "zeta"]
    assert all(set(s) == STREAM_FIELDS for s in body["streams"])
    zeta = body["streams"][2]
    assert (zeta["value"], zeta["latest_value_at"]) == (2.0, "2024-01-02T00:00:00.000Z")
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{device}/streams/zeta", key=master)
    assert viewed == zeta

    status, body, _ = await stack.request(
        "DELETE", f"/v2/devices/{device}/streams/zeta", key=master
    )
    assert (status, body) == (204, None)
    status, body, _ = await stack.request("GET", f"/v2/devices/{device}/streams/zeta", key=master)
    assert (status, body["message"]) == (404, STREAM_NOT_FOUND)
    status, body, _ = await stack.request(
        "DELETE", f"/v2/devices/{device}/streams/zeta", key=master
    )
    assert (status, body["message"]) == (404, STREAM_NOT_FOUND)
    _, body, _ = await stack.request("GET", f"/v2/devices/{device}/streams", key=master)
    assert [s["name"] for s in body["streams"]] == ["alpha", "mid.dle-1_x"]
    _, device_body, _ = await stack.request("GET", f"/v2/devices/{device}", key=master)
    assert device_body["streams"]["count"] == 2

    # Its values went with it: a new stream of that name starts empty.
    status, body, _ = await stack.request(
        "PUT", f"/v2/devices/{device}/streams/zeta", key=master, json={}
    )
    assert status == 201
    assert (body["value"], body["latest_value_at"]) == (None, None)
    status, body, _ = await stack.request(
        "GET", f"/v2/devices/{device}/streams/zeta/values", key=master
    )
    assert (status, body["values"]) == (200, [])


async def test_unknown_stream_is_stream_not_found(stack: Stack) -> None:
    master, device = await new_device(stack)
    base = f"/v2/devices/{device}/streams/nope"
    values = {"values": [{"timestamp": "2024-01-01T00:00:00Z", "value": 1}]}
    cases: list[tuple[str, str, Any]] = [
        ("GET", base, None),
        ("DELETE", base, None),
        ("PUT", f"{base}/value", {"value": 1}),
        ("POST", f"{base}/values", values),
        ("GET", f"{base}/values", None),
        ("GET", f"{base}/values.csv", None),
        (
            "DELETE",
            f"{base}/values",
            {"from": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
        ),
        ("GET", f"{base}/sampling?type=avg&interval=60", None),
        ("GET", f"{base}/stats", None),
    ]
    for method, path, body in cases:
        status, answer, _ = await stack.request(method, path, key=master, json=body)
        assert status == 404, (method, path, answer)
        assert answer["message"] == STREAM_NOT_FOUND, (method, path)
        assert answer["description"]
    status, answer, _ = await stack.request("GET", f"/v2/devices/{device}/streams", key=master)
    assert answer == {"streams": []}, "a request on an unknown stream created it"


async def test_stream_validation(stack: Stack) -> None:
    master, device = await new_device(stack)
    base = f"/v2/devices/{device}/streams"
    cases: list[tuple[str, Any, dict[str, Any]]] = [
        ("t", {"type": "float"}, invalid(type=["not_valid"])),
        ("t", {"type": 3}, invalid(type=["not_valid"])),
        ("t", {"unit": "celsius"}, invalid(unit=["not_valid"])),
        ("t", {"unit": ["C"]}, invalid(unit=["not_valid"])),
        ("t", {"unit": {"label": {"x": 1}}}, invalid(unit=["not_valid"])),
        ("t", {"unit": {"symbol": ["C"]}}, invalid(unit=["not_valid"])),
        ("t", {"unit": {"label": "x" * 256}}, invalid(unit=["not_valid"])),
        ("t", {"display_name": "x" * 256}, invalid(display_name=["not_valid"])),
        ("t", {"display_name": ["x"]}, invalid(display_name=["not_valid"])),
        ("x" * 129, {}, invalid(name=["not_valid"])),
    ]
    for name, body, expected in cases:
        status, answer, _ = await stack.request("PUT", f"{base}/{name}", key=master, json=body)
        assert (status, answer) == (422, expected), body
    status, answer, _ = await stack.request("PUT", f"{base}/t", key=master, json=["numeric"])
    assert status == 400 and answer["message"] == "Bad Request"
    status, answer, _ = await stack.request("GET", base, key=master)
    assert answer == {"streams": []}, "a refused PUT created a stream"

    # The longest name allowed, and a unit label at its limit.
    status, answer, _ = await stack.request(
        "PUT", f"{base}/{'n' * 128}", key=master, json={"unit": {"label": "x" * 255}}
    )
    assert status == 201, answer
    assert answer["name"] == "n" * 128 and answer["unit"]["label"] == "x" * 255
    # A refused update leaves the stream as it was.
    status, _, _ = await stack.request(
        "PUT", f"{base}/{'n' * 128}", key=master, json={"type": "text", "display_name": "D"}
    )
    assert status == 422
    _, viewed, _ = await stack.request("GET", f"{base}/{'n' * 128}", key=master)
    assert (viewed["type"], viewed["display_name"]) == ("numeric", None)
