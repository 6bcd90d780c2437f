"""Devices of spec §3 and §5 (object of §22.1) through the real adapter and storage service."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.stack import Stack

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# §22.1 as this server emits it: `key` for master-key callers, `metadata` on view and create.
DEVICE_FIELDS = {
    "id", "url", "name", "description", "visibility", "status", "serial", "tags", "location",
    "streams", "triggers", "last_activity", "created", "updated", "key", "metadata",
}  # fmt: skip
LIST_FIELDS = DEVICE_FIELDS - {"metadata"}
CATALOG_FIELDS = LIST_FIELDS - {"key"}
DEVICE_NOT_FOUND = "Device Not Found"


async def create_device(stack: Stack, master: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "device")
    fields.setdefault("visibility", "private")
    status, body, _ = await stack.request("POST", "/v2/devices", key=master, json=fields)
    assert status == 201, body
    return body


def invalid(**errors: list[str]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": errors}


def links(header: str) -> dict[str, dict[str, Any]]:
    """rel -> {"path": ..., "query": {name: value}} of a Link header."""
    found = {}
    for part in header.split(","):
        match = re.fullmatch(r'\s*<([^>]+)>;\s*rel="(\w+)"\s*', part)
        assert match, header
        url = urlsplit(match.group(1))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        found[match.group(2)] = {"base": f"{url.scheme}://{url.netloc}{url.path}", "query": query}
    return found


async def names_of(stack: Stack, master: str, path: str, **kwargs: Any) -> list[str]:
    status, body, _ = await stack.request("GET", path, key=master, **kwargs)
    assert status == 200, (path, body)
    return [d["name"] for d in body["devices"]]


async def test_create_view_update_delete(stack: Stack) -> None:
    _, master = await stack.new_account()
    status, created, headers = await stack.request(
        "POST", "/v2/devices", key=master,
        json={"name": " Thermostat ", "description": "hall", "visibility": "private",
              "tags": "lab, office", "serial": "th-1", "metadata": {"floor": "2"}},
    )  # fmt: skip
    assert status == 201, created
    assert set(created) == DEVICE_FIELDS
    device_id = created["id"]
    url = f"{stack.url}/v2/devices/{device_id}"
    assert HEX32.fullmatch(device_id) and HEX32.fullmatch(created["key"])
    assert headers["Location"] == url == created["url"]
    generated = ("id", "url", "key", "created", "updated")
    assert {k: v for k, v in created.items() if k not in generated} == {
        "name": "Thermostat", "description": "hall", "visibility": "private",
        "status": "enabled", "serial": "th-1", "tags": ["lab", "office"], "location": {},
        "streams": {"count": 0, "url": url + "/streams"},
        "triggers": {"count": 0, "url": url + "/triggers"},
        "last_activity": None, "metadata": {"floor": "2"},
    }  # fmt: skip
    assert ISO_MS.fullmatch(created["created"]) and created["updated"] == created["created"]

    status, viewed, _ = await stack.request("GET", f"/v2/devices/{device_id}", key=master)
    assert (status, viewed) == (200, created)
    # The primary device key created with the device works on it.
    status, _, _ = await stack.request("GET", f"/v2/devices/{device_id}", key=created["key"])
    assert status == 200

    status, body, _ = await stack.request(
        "PUT", f"/v2/devices/{device_id}", key=master,
        json={"name": "Renamed", "visibility": "public", "tags": ["a", "b", "a"],
              "description": "stairs"},
    )  # fmt: skip
    assert (status, body) == (204, None)
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{device_id}", key=master)
    assert (viewed["name"], viewed["visibility"], viewed["tags"], viewed["description"]) == (
        "Renamed",
        "public",
        ["a", "b"],
        "stairs",
    )
    # Fields not sent are kept.
    assert (viewed["serial"], viewed["metadata"], viewed["key"]) == (
        "th-1",
        {"floor": "2"},
        created["key"],
    )
    assert viewed["created"] == created["created"] and viewed["updated"] >= created["updated"]

    status, body, _ = await stack.request("DELETE", f"/v2/devices/{device_id}", key=master)
    assert (status, body) == (204, None)
    for method in ("GET", "PUT", "DELETE"):
        status, body, _ = await stack.request(
            method, f"/v2/devices/{device_id}", key=master, json={} if method == "PUT" else None
        )
        assert status == 404, method
        assert body["message"] == DEVICE_NOT_FOUND
    # The device's primary key went with it.
    status, _, _ = await stack.request("GET", f"/v2/devices/{device_id}", key=created["key"])
    assert status == 401
    status, body, _ = await stack.request("GET", "/v2/devices", key=master)
    assert body["total"] == 0 and body["devices"] == []


async def test_create_and_update_validation(stack: Stack) -> None:
    _, master = await stack.new_account()
    cases: list[tuple[Any, dict[str, Any]]] = [
        ({}, invalid(name=["not_present"], visibility=["not_present"])),
        ({"name": "   ", "visibility": "private"}, invalid(name=["not_present"])),
        ({"name": "x"}, invalid(visibility=["not_present"])),
        ({"name": "x", "visibility": "secret"}, invalid(visibility=["not_valid"])),
        ({"name": "x", "visibility": "public", "status": "off"}, invalid(status=["not_valid"])),
        ({"name": "x" * 256, "visibility": "public"}, invalid(name=["not_valid"])),
        ({"name": "x", "visibility": "public", "tags": [1, 2]}, invalid(tags=["not_valid"])),
        ({"name": "x", "visibility": "public", "metadata": [1]}, invalid(metadata=["not_valid"])),
        ({"name": "x", "visibility": "public", "serial": "a b"}, invalid(serial=["not_valid"])),
        ({"name": {"n": 1}, "visibility": "public"}, invalid(name=["not_valid"])),
    ]
    for body, expected in cases:
        status, answer, _ = await stack.request("POST", "/v2/devices", key=master, json=body)
        assert (status, answer) == (422, expected), body
    status, answer, _ = await stack.request("POST", "/v2/devices", key=master, json=["x"])
    assert status == 400 and answer["message"] == "Bad Request"
    status, answer, _ = await stack.request(
        "POST", "/v2/devices", key=master, data=b"{not json",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400
    status, answer, _ = await stack.request("GET", "/v2/devices", key=master)
    assert answer["total"] == 0, "a refused create stored a device"

    # Serials are unique per account, on create and on update; other accounts may reuse them.
    first = await create_device(stack, master, serial="sn-1")
    second = await create_device(stack, master, serial="sn-2")
    status, answer, _ = await stack.request(
        "POST",
        "/v2/devices",
        key=master,
        json={"name": "x", "visibility": "private", "serial": "sn-1"},
    )
    assert (status, answer) == (422, invalid(serial=["not_unique"]))
    status, answer, _ = await stack.request(
        "PUT", f"/v2/devices/{second['id']}", key=master, json={"serial": "sn-1"}
    )
    assert (status, answer) == (422, invalid(serial=["not_unique"]))
    status, _, _ = await stack.request(
        "PUT", f"/v2/devices/{first['id']}", key=master, json={"serial": "sn-1", "name": "same"}
    )
    assert status == 204
    _, other_master = await stack.new_account("other")
    await create_device(stack, other_master, serial="sn-1")

    for body, expected in [
        ({"visibility": "hidden"}, invalid(visibility=["not_valid"])),
        ({"status": "paused"}, invalid(status=["not_valid"])),
        ({"name": ""}, invalid(name=["not_present"])),
        ({"metadata": "x"}, invalid(metadata=["not_valid"])),
    ]:
        status, answer, _ = await stack.request(
            "PUT", f"/v2/devices/{first['id']}", key=master, json=body
        )
        assert (status, answer) == (422, expected), body
    status, answer, _ = await stack.request(
        "PUT", f"/v2/devices/{first['id']}", key=master, json=[{"name": "x"}]
    )
    assert status == 400
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{first['id']}", key=master)
    assert (viewed["name"], viewed["visibility"], viewed["status"]) == (
        "same",
        "private",
        "enabled",
    )
    status, answer, _ = await stack.request(
        "PUT", "/v2/devices/" + "0" * 32, key=master, json={"name": "x"}
    )
    assert (status, answer["message"]) == (404, DEVICE_NOT_FOUND)


async def test_list_pagination_and_link_header(stack: Stack) -> None:
    _, master = await stack.new_account()
    made = [await create_device(stack, master, name=f"d{i:02}") for i in range(12)]
    newest_first = [d["name"] for d in reversed(made)]

    status, body, headers = await stack.request("GET", "/v2/devices", key=master)
    assert status == 200
    assert {k: body[k] for k in ("total", "pages", "limit", "current_page")} == {
        "total": 12, "pages": 2, "limit": 10, "current_page": 1,
    }  # fmt: skip
    assert set(body) == {"devices", "total", "pages", "limit", "current_page"}
    assert [d["name"] for d in body["devices"]] == newest_first[:10]
    assert all(set(d) == LIST_FIELDS for d in body["devices"])
    by_id = {d["id"]: d for d in made}
    assert all(d["key"] == by_id[d["id"]]["key"] for d in body["devices"])
    rels = links(headers["Link"])
    assert set(rels) == {"first", "last", "next"}
    assert {rel: link["query"]["page"] for rel, link in rels.items()} == {
        "first": "1", "last": "2", "next": "2",
    }  # fmt: skip
    assert all(link["base"] == f"{stack.url}/v2/devices" for link in rels.values())

    status, body, headers = await stack.request(
        "GET", "/v2/devices", key=master, params={"page": "2"}
    )
    assert [d["name"] for d in body["devices"]] == newest_first[10:]
    assert body["current_page"] == 2
    rels = links(headers["Link"])
    assert set(rels) == {"first", "last", "prev"} and rels["prev"]["query"]["page"] == "1"

    # Other query parameters are kept in the links.
    _, body, headers = await stack.request(
        "GET", "/v2/devices", key=master, params={"limit": "5", "page": "2", "sort": "name"}
    )
    assert (body["limit"], body["pages"], body["current_page"]) == (5, 3, 2)
    assert [d["name"] for d in body["devices"]] == [f"d{i:02}" for i in range(6, 1, -1)]
    rels = links(headers["Link"])
    assert {rel: link["query"] for rel, link in rels.items()} == {
        "first": {"limit": "5", "sort": "name", "page": "1"},
        "last": {"limit": "5", "sort": "name", "page": "3"},
        "prev": {"limit": "5", "sort": "name", "page": "1"},
        "next": {"limit": "5", "sort": "name", "page": "3"},
    }  # fmt: skip

    _, body, _ = await stack.request("GET", "/v2/devices", key=master, params={"limit": "1000"})
    assert (body["limit"], body["pages"], len(body["devices"])) == (100, 1, 12)
    _, body, _ = await stack.request("GET", "/v2/devices", key=master, params={"page": "9"})
    assert (body["devices"], body["total"], body["current_page"]) == ([], 12, 9)
    for params in ({"page": "0"}, {"limit": "-1"}, {"page": "x"}):
        status, body, _ = await stack.request("GET", "/v2/devices", key=master, params=params)
        assert status == 422, params
        assert set(body["errors"]) == set(params)


async def test_sort_dir_and_q(stack: Stack) -> None:
    _, master = await stack.new_account()
    b = await create_device(stack, master, name="bravo", serial="s3", description="Arduino board")
    a = await create_device(stack, master, name="Alpha", serial="s2", tags="garden")
    c = await create_device(stack, master, name="charlie", serial="s1")
    for device in (a, b, c):
        status, _, _ = await stack.request(
            "PUT", f"/v2/devices/{device['id']}/streams/t", key=master, json={}
        )
        assert status == 201
    # Written in the order c, a: last_activity follows the timestamps written.
    for device, ts in ((c, "2024-01-01T00:00:00Z"), (a, "2024-01-02T00:00:00Z")):
        status, _, _ = await stack.request(
            "PUT", f"/v2/devices/{device['id']}/streams/t/value", key=master,
            json={"value": 1, "timestamp": ts},
        )  # fmt: skip
        assert status == 202

    expectations = {
        (): ["charlie", "Alpha", "bravo"],  # created, newest first
        (("sort", "created"), ("dir", "asc")): ["bravo", "Alpha", "charlie"],
        (("sort", "name"),): ["charlie", "bravo", "Alpha"],  # case-insensitive, default desc
        (("sort", "name"), ("dir", "asc")): ["Alpha", "bravo", "charlie"],
        (("sort", "serial"), ("dir", "asc")): ["charlie", "Alpha", "bravo"],
        (("q", "ARDUINO"),): ["bravo"],  # description
        (("q", "alp"),): ["Alpha"],  # name
        (("q", "s1"),): ["charlie"],  # serial
        (("q", "garden"),): ["Alpha"],  # tags
        (("q", "nothing"),): [],
    }
    for params, expected in expectations.items():
        assert await names_of(stack, master, "/v2/devices", params=dict(params)) == expected, params
    _, body, _ = await stack.request("GET", "/v2/devices", key=master, params={"q": "a"})
    assert body["total"] == 3
    for params in ({"sort": "color"}, {"dir": "up"}):
        status, body, _ = await stack.request("GET", "/v2/devices", key=master, params=params)
        assert (status, body) == (422, invalid(**{next(iter(params)): ["not_valid"]})), params

    # last_activity is the newest timestamp written; devices sort on it (never written: last).
    status, body, _ = await stack.request(
        "GET", "/v2/devices", key=master, params={"sort": "last_activity", "dir": "desc"}
    )
    assert {d["name"]: d["last_activity"] for d in body["devices"]} == {
        "Alpha": "2024-01-02T00:00:00.000Z", "charlie": "2024-01-01T00:00:00.000Z", "bravo": None,
    }  # fmt: skip
    assert [d["name"] for d in body["devices"]] == ["Alpha", "charlie", "bravo"]
    assert await names_of(
        stack, master, "/v2/devices", params={"sort": "last_activity", "dir": "asc"}
    ) == ["bravo", "charlie", "Alpha"]


async def test_search_filters_in_query_and_body(stack: Stack) -> None:
    _, master = await stack.new_account()
    hq = await create_device(stack, master, name="hq-sensor", tags="a,b", serial="one",
                             metadata={"building": "HQ"}, visibility="public")  # fmt: skip
    lab = await create_device(stack, master, name="lab-sensor", tags="a", serial="two",
                              metadata={"building": "Lab"})  # fmt: skip
    off = await create_device(stack, master, name="spare", serial="three", status="disabled")
    setup: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (hq, {"temperature": 25, "state": "on"}),
        (lab, {"temperature": 5, "state": "off"}),
    ]
    for device, values in setup:
        for stream, value in values.items():
            kind = "numeric" if isinstance(value, int) else "alphanumeric"
            status, _, _ = await stack.request(
                "PUT", f"/v2/devices/{device['id']}/streams/{stream}", key=master,
                json={"type": kind},
            )  # fmt: skip
            assert status == 201
        status, _, _ = await stack.request(
            "POST", f"/v2/devices/{device['id']}/update", key=master, json={"values": values}
        )
        assert status == 202
    # hq in Irvine, lab in Los Angeles (~60 km apart); spare has no location.
    for device, (lat, lon) in ((hq, (33.6908, -117.7597)), (lab, (34.0522, -118.2437))):
        status, _, _ = await stack.request(
            "PUT", f"/v2/devices/{device['id']}/location", key=master,
            json={"latitude": lat, "longitude": lon},
        )  # fmt: skip
        assert status == 202

    def sorted_names(body: dict[str, Any]) -> list[str]:
        return sorted(d["name"] for d in body["devices"])

    query_cases = [
        ({}, ["hq-sensor", "lab-sensor", "spare"]),
        ({"name": "SENSOR"}, ["hq-sensor", "lab-sensor"]),
        ({"tags": "a"}, ["hq-sensor", "lab-sensor"]),
        ({"tags": "a,b"}, ["hq-sensor"]),
        ({"serial": "two,three"}, ["lab-sensor", "spare"]),
        ({"serials": "one"}, ["hq-sensor"]),
        ({"status": "disabled"}, ["spare"]),
        ({"status": "enabled"}, ["hq-sensor", "lab-sensor"]),
        ({"visibility": "public"}, ["hq-sensor"]),
        ({"visibility": "private", "name": "sensor"}, ["lab-sensor"]),
        ({"ids": f"{hq['id']},{off['id']}"}, ["hq-sensor", "spare"]),
    ]
    for params, expected in query_cases:
        status, body, _ = await stack.request(
            "GET", "/v2/devices/search", key=master, params=params
        )
        assert status == 200, (params, body)
        assert sorted_names(body) == expected, ("GET", params)
        assert body["total"] == len(expected)
        status, body, _ = await stack.request("POST", "/v2/devices/search", key=master, json=params)
        assert status == 200, (params, body)
        assert sorted_names(body) == expected, ("POST", params)

    irvine = {"latitude": 33.69, "longitude": -117.76}
    body_cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"streams": {"temperature": {"gt": 10}}}, ["hq-sensor"]),
        ({"streams": {"temperature": {"gte": 5, "lte": 25}}}, ["hq-sensor", "lab-sensor"]),
        ({"streams": {"temperature": {"lt": 5}}}, []),
        ({"streams": {"temperature": {"eq": 5}}}, ["lab-sensor"]),
        ({"streams": {"state": {"match": "on"}}}, ["hq-sensor"]),
        ({"metadata": {"building": {"match": "Lab"}}}, ["lab-sensor"]),
        ({"location": {"within_circle": {"center": irvine, "radius": {"km": 10}}}},
         ["hq-sensor"]),
        ({"location": {"within_circle": {"center": irvine, "radius": {"mi": 50}}}},
         ["hq-sensor", "lab-sensor"]),
        ({"location": {"within_polygon": [
            {"latitude": 34.5, "longitude": -118.5}, {"latitude": 34.5, "longitude": -118.0},
            {"latitude": 33.5, "longitude": -118.0}, {"latitude": 33.5, "longitude": -118.5},
        ]}}, ["lab-sensor"]),
        ({"location": "none"}, ["spare"]),
        # Scalars and complex filters combine.
        ({"tags": "a", "streams": {"temperature": {"lt": 30}}, "visibility": "private"},
         ["lab-sensor"]),
    ]  # fmt: skip
    for filters, expected in body_cases:
        status, body, _ = await stack.request(
            "POST", "/v2/devices/search", key=master, json=filters
        )
        assert status == 200, (filters, body)
        assert sorted_names(body) == expected, ("POST", filters)
        # Clients also send the body on GET.
        status, body, _ = await stack.request("GET", "/v2/devices/search", key=master, json=filters)
        assert status == 200, (filters, body)
        assert sorted_names(body) == expected, ("GET", filters)
    # Query string and body merge.
    status, body, _ = await stack.request(
        "POST", "/v2/devices/search", key=master, params={"name": "hq"},
        json={"streams": {"temperature": {"gte": 0}}},
    )  # fmt: skip
    assert sorted_names(body) == ["hq-sensor"]
    # Paginated like the list.
    _, body, headers = await stack.request(
        "GET", "/v2/devices/search", key=master, params={"limit": "1", "sort": "name", "dir": "asc"}
    )
    assert (body["total"], body["pages"], body["limit"]) == (3, 3, 1)
    assert [d["name"] for d in body["devices"]] == ["hq-sensor"]
    assert links(headers["Link"])["next"]["query"]["page"] == "2"

    for filters, field in [
        ({"status": "sleeping"}, "status"),
        ({"visibility": "open"}, "visibility"),
        ({"streams": ["temperature"]}, "streams"),
        ({"metadata": "HQ"}, "metadata"),
        ({"location": {"within_circle": {"center": irvine}}}, "location"),
        ({"location": {"within_polygon": [irvine]}}, "location"),
    ]:
        status, body, _ = await stack.request(
            "POST", "/v2/devices/search", key=master, json=filters
        )
        assert (status, list(body.get("errors", {}))) == (422, [field]), filters
    status, body, _ = await stack.request("POST", "/v2/devices/search", key=master, json=[1])
    assert status == 400


async def test_tags_and_public_catalog(fresh_stack: Stack) -> None:
    stack = fresh_stack  # the catalog shows the public devices of every account
    _, master = await stack.new_account("a")
    _, other = await stack.new_account("b")
    status, body, _ = await stack.request("GET", "/v2/devices/tags", key=master)
    assert (status, body) == (200, {"tags": {}})
    await create_device(stack, master, name="a-public", visibility="public", tags="x,y")
    await create_device(stack, master, name="a-private", tags=["x"])
    await create_device(stack, other, name="b-public", visibility="public", tags="x,z")
    await create_device(stack, other, name="b-private")
    status, body, _ = await stack.request("GET", "/v2/devices/tags", key=master)
    assert (status, body) == (200, {"tags": {"x": 2, "y": 1}})
    status, body, _ = await stack.request("GET", "/v2/devices/tags", key=other)
    assert (status, body) == (200, {"tags": {"x": 1, "z": 1}})
    status, _, _ = await stack.request("GET", "/v2/devices/tags")
    assert status == 401

    # The catalog: public devices of every account, no key needed, no device keys shown.
    for key in (None, master, other):
        status, body, _ = await stack.request("GET", "/v2/devices/catalog", key=key)
        assert status == 200, key
        assert [d["name"] for d in body["devices"]] == ["b-public", "a-public"], key
        assert (body["total"], body["pages"], body["limit"], body["current_page"]) == (2, 1, 10, 1)
        assert all(set(d) == CATALOG_FIELDS for d in body["devices"])
    _, body, _ = await stack.request(
        "GET", "/v2/devices/catalog", params={"sort": "name", "dir": "asc", "limit": "1"}
    )
    assert [d["name"] for d in body["devices"]] == ["a-public"] and body["pages"] == 2
    _, body, _ = await stack.request("GET", "/v2/devices/catalog/search", params={"tags": "z"})
    assert [d["name"] for d in body["devices"]] == ["b-public"]
    _, body, _ = await stack.request(
        "POST", "/v2/devices/catalog/search", json={"visibility": "private"}
    )
    # The catalog holds public devices only, whatever the filter asks.
    assert {d["visibility"] for d in body["devices"]} <= {"public"}


async def test_serial_addresses_every_device_route(stack: Stack) -> None:
    _, master = await stack.new_account()
    device = await create_device(stack, master, name="by-serial", serial="SN.42-x")
    base = "/v2/devices/serial/SN.42-x"

    status, body, _ = await stack.request("GET", base, key=master)
    assert (status, body["id"]) == (200, device["id"])
    status, _, _ = await stack.request("PUT", base, key=master, json={"description": "renamed"})
    assert status == 204
    status, body, _ = await stack.request("PUT", f"{base}/streams/t", key=master, json={})
    assert status == 201
    assert body["url"] == f"{stack.url}/v2/devices/{device['id']}/streams/t"
    status, _, _ = await stack.request(
        "PUT", f"{base}/streams/t/value", key=master,
        json={"value": 3, "timestamp": "2024-01-01T00:00:00Z"},
    )  # fmt: skip
    assert status == 202
    status, body, _ = await stack.request("GET", f"{base}/streams/t/values", key=master)
    assert body["values"] == [{"timestamp": "2024-01-01T00:00:00.000Z", "value": 3.0}]
    status, _, _ = await stack.request("PUT", f"{base}/metadata/room", key=master,
                                       json={"value": "7"})  # fmt: skip
    assert status == 204
    status, body, _ = await stack.request("GET", f"/v2/devices/{device['id']}", key=master)
    assert (body["description"], body["metadata"], body["streams"]["count"]) == (
        "renamed",
        {"room": "7"},
        1,
    )
    # The device key too reaches its device by serial.
    status, _, _ = await stack.request("GET", f"{base}/streams", key=device["key"])
    assert status == 200

    # Changing the serial moves the address.
    status, _, _ = await stack.request("PUT", base, key=master, json={"serial": "new"})
    assert status == 204
    status, body, _ = await stack.request("GET", base, key=master)
    assert (status, body["message"]) == (404, DEVICE_NOT_FOUND)
    status, _, _ = await stack.request("GET", "/v2/devices/serial/new", key=master)
    assert status == 200

    # Serials are per account: another account's master does not find it.
    _, other = await stack.new_account("other")
    status, body, _ = await stack.request("GET", "/v2/devices/serial/new", key=other)
    assert (status, body["message"]) == (404, DEVICE_NOT_FOUND)

    status, _, _ = await stack.request("DELETE", "/v2/devices/serial/new", key=master)
    assert status == 204
    status, _, _ = await stack.request("GET", f"/v2/devices/{device['id']}", key=master)
    assert status == 404


async def test_metadata_routes(stack: Stack) -> None:
    _, master = await stack.new_account()
    device = await create_device(stack, master, metadata={"a": "1", "b": {"nested": [1, 2]}})
    path = f"/v2/devices/{device['id']}/metadata"

    status, body, _ = await stack.request("GET", path, key=master)
    assert (status, body) == (200, {"a": "1", "b": {"nested": [1, 2]}})
    status, body, _ = await stack.request("GET", f"{path}/b", key=master)
    assert (status, body) == (200, {"value": {"nested": [1, 2]}})
    status, body, _ = await stack.request("GET", f"{path}/missing", key=master)
    assert status == 404
    assert body["message"].endswith("Not Found")

    # PUT of the whole object replaces it.
    status, body, _ = await stack.request("PUT", path, key=master, json={"c": "3", "d": 4})
    assert (status, body) == (204, None)
    status, body, _ = await stack.request("GET", path, key=master)
    assert body == {"c": "3", "d": 4}
    status, _, _ = await stack.request("GET", f"{path}/a", key=master)
    assert status == 404

    # PUT of one field sets only it.
    status, body, _ = await stack.request("PUT", f"{path}/c", key=master, json={"value": "new"})
    assert (status, body) == (204, None)
    status, _, _ = await stack.request("PUT", f"{path}/e", key=master, json={"value": None})
    assert status == 204
    status, body, _ = await stack.request("GET", path, key=master)
    assert body == {"c": "new", "d": 4, "e": None}
    status, body, _ = await stack.request("GET", f"{path}/c", key=master)
    assert body == {"value": "new"}
    _, viewed, _ = await stack.request("GET", f"/v2/devices/{device['id']}", key=master)
    assert viewed["metadata"] == {"c": "new", "d": 4, "e": None}

    # The device key reads and writes its device's metadata.
    status, _, _ = await stack.request("PUT", f"{path}/f", key=device["key"], json={"value": 1})
    assert status == 204
    status, body, _ = await stack.request("GET", f"{path}/f", key=device["key"])
    assert (status, body) == (200, {"value": 1})

    status, body, _ = await stack.request("PUT", f"{path}/c", key=master, json={"val": 1})
    assert (status, body) == (422, invalid(value=["not_present"]))
    status, _, _ = await stack.request("PUT", path, key=master, json=["not", "an", "object"])
    assert status == 400
    status, body, _ = await stack.request("GET", path, key=master)
    assert body == {"c": "new", "d": 4, "e": None, "f": 1}
    status, body, _ = await stack.request(
        "GET", "/v2/devices/" + "0" * 32 + "/metadata", key=master
    )
    assert (status, body["message"]) == (404, DEVICE_NOT_FOUND)
