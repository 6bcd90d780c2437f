"""The Keys API of spec §13 (object of §22.7) through the real adapter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.stack import NO_LIMITS, Stack, start_stack

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
KEY = re.compile(r"^[0-9a-f]{32}$")
SPEC_FIELDS = {
    "name", "key", "master", "device", "stream", "permissions", "expires_at", "expired",
    "origin", "device_access", "created", "updated",
}  # fmt: skip
PRIMARY_IMMUTABLE = {
    "message": "Forbidden",
    "description": "Primary keys cannot be edited or deleted, only regenerated.",
}
DEVICE_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
DEVICE_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


async def create(stack: Stack, master: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "key")
    fields.setdefault("permissions", ["GET"])
    status, body, _ = await stack.request("POST", "/v2/keys", key=master, json=fields)
    assert status == 201, body
    return body


def invalid(**errors: list[str]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": errors}


async def test_create_returns_the_key_object_and_its_location(stack: Stack) -> None:
    _, master = await stack.new_account()
    status, body, headers = await stack.request(
        "POST", "/v2/keys", key=master, json={"name": "reader", "permissions": ["GET"]}
    )
    assert status == 201
    assert SPEC_FIELDS <= set(body)
    assert KEY.fullmatch(body["key"])
    assert body["key"] != master
    assert headers["Location"] == f"{stack.url}/v2/keys/{body['key']}"
    assert {k: body[k] for k in SPEC_FIELDS - {"key", "created", "updated"}} == {
        "name": "reader", "master": True, "device": None, "stream": None,
        "permissions": ["GET"], "expires_at": None, "expired": False, "origin": None,
        "device_access": "public",
    }  # fmt: skip
    assert ISO_MS.fullmatch(body["created"])
    assert body["updated"] == body["created"]

    # Every field set, in the forms clients send them.
    status, body, headers = await stack.request(
        "POST", "/v2/keys", key=master,
        json={
            "name": "  sensor  ", "permissions": ["get", "PUT", "GET"], "device": DEVICE_A,
            "stream": "temperature", "expires_at": "2099-01-01T02:00:00.123456+02:00",
            "origin": "127.0.0.1, 10.0.0.0/8", "device_access": "private",
        },
    )  # fmt: skip
    assert status == 201
    assert headers["Location"] == f"{stack.url}/v2/keys/{body['key']}"
    assert {k: body[k] for k in SPEC_FIELDS - {"key", "created", "updated"}} == {
        "name": "sensor", "master": False, "device": f"{stack.url}/v2/devices/{DEVICE_A}",
        "stream": "temperature", "permissions": ["GET", "PUT"],
        "expires_at": "2099-01-01T00:00:00.123Z", "expired": False,
        "origin": "127.0.0.1,10.0.0.0/8", "device_access": "private",
    }  # fmt: skip

    # A key created by POST works for the very next request.
    status, _, _ = await stack.request("GET", "/v2/keys", key=(await create(stack, master))["key"])
    assert status == 200


async def test_create_validation(stack: Stack) -> None:
    _, master = await stack.new_account()
    ok = {"name": "k", "permissions": ["GET"]}
    cases: list[tuple[dict[str, Any], dict[str, list[str]]]] = [
        ({"name": "k"}, {"permissions": ["not_present"]}),
        ({**ok, "permissions": []}, {"permissions": ["not_present"]}),
        ({**ok, "permissions": ["GET", "FETCH"]}, {"permissions": ["not_valid"]}),
        ({**ok, "permissions": "GET"}, {"permissions": ["not_valid"]}),
        ({**ok, "permissions": [1, 2]}, {"permissions": ["not_valid"]}),
        ({"permissions": ["GET"]}, {"name": ["not_present"]}),
        ({**ok, "name": "   "}, {"name": ["not_present"]}),
        ({**ok, "name": "n" * 256}, {"name": ["not_valid"]}),
        ({**ok, "name": {"first": "k"}}, {"name": ["not_valid"]}),
        ({**ok, "name": ["k"]}, {"name": ["not_valid"]}),
        ({**ok, "expires_at": "next tuesday"}, {"expires_at": ["not_valid"]}),
        ({**ok, "expires_at": 1234567890}, {"expires_at": ["not_valid"]}),
        ({**ok, "origin": "not-an-ip"}, {"origin": ["not_valid"]}),
        ({**ok, "origin": "127.0.0.1,300.1.1.1"}, {"origin": ["not_valid"]}),
        ({**ok, "origin": {"ip": "127.0.0.1"}}, {"origin": ["not_valid"]}),
        ({**ok, "device": "not-a-device-id"}, {"device": ["not_valid"]}),
        ({**ok, "device": {"id": DEVICE_A}}, {"device": ["not_valid"]}),
        ({**ok, "device_access": "everyone"}, {"device_access": ["not_valid"]}),
        ({**ok, "stream": "temperature"}, {"stream": ["not_valid"]}),
        ({"name": {}, "permissions": "GET"}, {"name": ["not_valid"], "permissions": ["not_valid"]}),
    ]
    for body, errors in cases:
        status, answer, _ = await stack.request("POST", "/v2/keys", key=master, json=body)
        assert (status, answer) == (422, invalid(**errors)), body
    _, listing, _ = await stack.request("GET", "/v2/keys", key=master)
    assert [k["key"] for k in listing["keys"]] == [master]


async def test_an_expiry_past_year_9999_is_refused_not_a_server_error(stack: Stack) -> None:
    """9999-12-31T23:30-01:00 is in year 10000 UTC, which no key object can show."""
    _, master = await stack.new_account()
    status, body, _ = await stack.request(
        "POST", "/v2/keys", key=master,
        json={"name": "far", "permissions": ["GET"], "expires_at": "9999-12-31T23:30:00-01:00"},
    )  # fmt: skip
    assert (status, body) == (422, invalid(expires_at=["not_valid"]))
    status, body, _ = await stack.request("GET", "/v2/keys", key=master)
    assert status == 200
    assert [k["key"] for k in body["keys"]] == [master]


async def test_list_and_filter_by_device(stack: Stack) -> None:
    _, master = await stack.new_account()
    other_account_master = (await stack.new_account("other"))[1]
    await create(stack, other_account_master, name="not mine", device=DEVICE_A)
    master_key = await create(stack, master, name="second master")
    device_a = await create(stack, master, name="device a", device=DEVICE_A)
    device_a2 = await create(stack, master, name="device a stream", device=DEVICE_A, stream="s")
    device_b = await create(stack, master, name="device b", device=DEVICE_B)

    status, body, _ = await stack.request("GET", "/v2/keys", key=master)
    assert status == 200
    assert set(body) == {"keys"}
    by_key = {k["key"]: k for k in body["keys"]}
    assert set(by_key) == {master, master_key["key"], device_a["key"], device_a2["key"],
                           device_b["key"]}  # fmt: skip
    assert by_key[device_b["key"]] == device_b
    assert by_key[master]["name"] == "Primary Key"
    assert SPEC_FIELDS <= set(by_key[master])

    status, body, _ = await stack.request("GET", f"/v2/keys?device={DEVICE_A}", key=master)
    assert status == 200
    assert {k["key"] for k in body["keys"]} == {device_a["key"], device_a2["key"]}
    status, body, _ = await stack.request("GET", "/v2/keys?device=" + "c" * 32, key=master)
    assert (status, body) == (200, {"keys": []})


async def test_view(stack: Stack) -> None:
    _, master = await stack.new_account()
    created = await create(stack, master, name="viewed", device=DEVICE_A, origin="127.0.0.1")
    status, body, _ = await stack.request("GET", f"/v2/keys/{created['key']}", key=master)
    assert (status, body) == (200, created)

    # Used once (so the adapter knows it), then viewed again: the same object.
    await stack.request("GET", "/v2/time", key=created["key"])
    status, body, _ = await stack.request("GET", f"/v2/keys/{created['key']}", key=master)
    assert (status, body) == (200, created)

    status, body, _ = await stack.request("GET", f"/v2/keys/{master}", key=master)
    assert status == 200
    assert (body["key"], body["name"], body["master"]) == (master, "Primary Key", True)
    assert body["permissions"] == ["GET", "POST", "PUT", "DELETE"]

    status, body, _ = await stack.request("GET", "/v2/keys/" + "0" * 32, key=master)
    assert status == 404
    assert body["message"] == "Key Not Found"


async def test_update(stack: Stack) -> None:
    _, master = await stack.new_account()
    key = await create(
        stack, master, name="before", permissions=["GET"], origin="127.0.0.1",
        expires_at="2099-01-01T00:00:00Z",
    )  # fmt: skip
    path = f"/v2/keys/{key['key']}"
    # Use it first so the adapter has it in hand; the change must still apply at once.
    assert (await stack.request("POST", "/v2/keys", key=key["key"], json={}))[0] == 403

    status, body, _ = await stack.request(
        "PUT", path, key=master, json={"name": "after", "permissions": ["GET", "POST"]}
    )
    assert (status, body) == (204, None)
    _, shown, _ = await stack.request("GET", path, key=master)
    assert (shown["name"], shown["permissions"]) == ("after", ["GET", "POST"])
    assert (shown["origin"], shown["expires_at"]) == ("127.0.0.1", "2099-01-01T00:00:00.000Z")
    assert (shown["key"], shown["created"]) == (key["key"], key["created"])
    assert shown["updated"] >= key["updated"]
    status, _, _ = await stack.request(
        "POST", "/v2/keys", key=key["key"], json={"name": "made", "permissions": ["GET"]}
    )
    assert status == 201

    # A partial update keeps every field it does not name.
    status, _, _ = await stack.request("PUT", path, key=master, json={"origin": "127.0.0.0/8"})
    assert status == 204
    _, shown_again, _ = await stack.request("GET", path, key=master)
    assert shown_again == {**shown, "origin": "127.0.0.0/8", "updated": shown_again["updated"]}

    # Bad values are refused and change nothing.
    for body, errors in (
        ({"permissions": ["FETCH"]}, {"permissions": ["not_valid"]}),
        ({"permissions": "GET"}, {"permissions": ["not_valid"]}),
        ({"name": ""}, {"name": ["not_present"]}),
        ({"expires_at": "soon"}, {"expires_at": ["not_valid"]}),
        ({"device": DEVICE_A}, {"device": ["not_valid"]}),  # a master key stays master
    ):
        status, answer, _ = await stack.request("PUT", path, key=master, json=body)
        assert (status, answer) == (422, invalid(**errors)), body
    assert (await stack.request("GET", path, key=master))[1] == shown_again

    status, body, _ = await stack.request("PUT", "/v2/keys/" + "0" * 32, key=master, json={})
    assert (status, body["message"]) == (404, "Key Not Found")

    # The primary master key cannot be edited.
    status, body, _ = await stack.request(
        "PUT", f"/v2/keys/{master}", key=master, json={"name": "renamed"}
    )
    assert (status, body) == (403, PRIMARY_IMMUTABLE)
    _, primary, _ = await stack.request("GET", f"/v2/keys/{master}", key=master)
    assert primary["name"] == "Primary Key"


async def test_regenerate(stack: Stack) -> None:
    _, master = await stack.new_account()
    old = await create(
        stack, master, name="rotating", permissions=["GET", "PUT"], device=DEVICE_A,
        origin="127.0.0.1",
    )  # fmt: skip
    other = await create(stack, master, name="rotating master", permissions=["GET", "POST"])
    # Known to the adapter before the change.
    assert (await stack.request("GET", "/v2/keys", key=other["key"]))[0] == 200

    for before in (old, other):
        status, new, headers = await stack.request(
            "POST", f"/v2/keys/{before['key']}/regenerate", key=master
        )
        assert status == 201
        assert KEY.fullmatch(new["key"])
        assert new["key"] != before["key"]
        assert headers["Location"] == f"{stack.url}/v2/keys/{new['key']}"
        same = SPEC_FIELDS - {"key", "updated"}
        assert {f: new[f] for f in same} == {f: before[f] for f in same}

        status, _, _ = await stack.request("GET", f"/v2/keys/{before['key']}", key=master)
        assert status == 404
        status, shown, _ = await stack.request("GET", f"/v2/keys/{new['key']}", key=master)
        assert (status, shown) == (200, new)

    # The old string is refused right after the 201; the new one works.
    status, body, _ = await stack.request("GET", "/v2/keys", key=other["key"])
    assert (status, body["message"]) == (401, "Unauthorized")
    status, _, _ = await stack.request("GET", "/v2/keys", key=new["key"])
    assert status == 200

    # The primary master key can be regenerated: the old one stops working at once.
    status, new_master, _ = await stack.request("POST", f"/v2/keys/{master}/regenerate", key=master)
    assert status == 201
    assert (new_master["name"], new_master["master"]) == ("Primary Key", True)
    status, _, _ = await stack.request("GET", "/v2/keys", key=master)
    assert status == 401
    status, body, _ = await stack.request("GET", "/v2/keys", key=new_master["key"])
    assert status == 200
    assert new_master["key"] in {k["key"] for k in body["keys"]}
    assert master not in {k["key"] for k in body["keys"]}


async def test_delete(stack: Stack) -> None:
    _, master = await stack.new_account()
    doomed = await create(stack, master, name="doomed", permissions=["GET", "DELETE"])
    assert (await stack.request("GET", "/v2/keys", key=doomed["key"]))[0] == 200

    status, body, _ = await stack.request("DELETE", f"/v2/keys/{doomed['key']}", key=master)
    assert (status, body) == (204, None)
    status, body, _ = await stack.request("GET", "/v2/keys", key=doomed["key"])
    assert (status, body["message"]) == (401, "Unauthorized")
    status, body, _ = await stack.request("GET", f"/v2/keys/{doomed['key']}", key=master)
    assert (status, body["message"]) == (404, "Key Not Found")
    status, body, _ = await stack.request("DELETE", f"/v2/keys/{doomed['key']}", key=master)
    assert (status, body["message"]) == (404, "Key Not Found")

    # A key may delete itself, and is gone afterwards.
    selfish = await create(stack, master, name="selfish", permissions=["DELETE"])
    status, _, _ = await stack.request("DELETE", f"/v2/keys/{selfish['key']}", key=selfish["key"])
    assert status == 204
    status, _, _ = await stack.request("DELETE", "/v2/keys/" + "0" * 32, key=selfish["key"])
    assert status == 401

    status, body, _ = await stack.request("DELETE", f"/v2/keys/{master}", key=master)
    assert (status, body) == (403, PRIMARY_IMMUTABLE)
    status, body, _ = await stack.request("GET", "/v2/keys", key=master)
    assert status == 200
    assert [k["key"] for k in body["keys"]] == [master]


async def test_public_url_is_the_base_of_every_link(tmp_path: Path) -> None:
    base = "https://m2x.example.com"
    async with start_stack(tmp_path, *NO_LIMITS, "--public-url", base) as stack:
        _, master = await stack.new_account()
        status, body, headers = await stack.request(
            "POST", "/v2/keys", key=master,
            json={"name": "d", "permissions": ["GET"], "device": DEVICE_A},
        )  # fmt: skip
        assert status == 201
        assert headers["Location"] == f"{base}/v2/keys/{body['key']}"
        assert body["device"] == f"{base}/v2/devices/{DEVICE_A}"

        status, body, headers = await stack.request(
            "POST", f"/v2/keys/{body['key']}/regenerate", key=master
        )
        assert status == 201
        assert headers["Location"] == f"{base}/v2/keys/{body['key']}"
        _, listing, _ = await stack.request("GET", "/v2/keys", key=master)
        devices = [k["device"] for k in listing["keys"] if k["device"]]
        assert devices == [f"{base}/v2/devices/{DEVICE_A}"]
