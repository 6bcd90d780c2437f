"""HTTP conventions of spec §1.5, §1.9, §1.10, §1.12, §18 and §19 through the real adapter."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
from multidict import CIMultiDict

from tests.support.stack import NO_LIMITS, Stack, start_stack

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MSGPACK = "application/x-msgpack"
# Headers that legitimately differ between two requests made one after the other.
PER_REQUEST = {"date", "x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset"}


async def raw(
    stack: Stack, method: str, path: str, **kwargs: Any
) -> tuple[int, bytes, CIMultiDict[str]]:
    """(status, body bytes as received, headers), for bodies that are not JSON."""
    async with stack.session.request(method, stack.url + path, **kwargs) as response:
        return response.status, await response.read(), CIMultiDict(response.headers)


async def wire(stack: Stack, method: str, path: str, key: str | None = None) -> tuple[str, bytes]:
    """(status line and headers, every byte after them) as the socket delivers them."""
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if key is not None:
        lines.append(f"X-M2X-KEY: {key}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


def header_map(head: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in head.split("\r\n")[1:])
    return {name.strip().lower(): value.strip() for name, value in fields}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_json_and_msgpack_bodies_in_and_out(stack: Stack) -> None:
    _, master = await stack.new_account()

    # MessagePack in, MessagePack out.
    status, body, headers = await raw(
        stack, "POST", "/v2/keys",
        data=msgpack.packb({"name": "packed", "permissions": ["GET"]}),
        headers={"X-M2X-KEY": master, "Content-Type": MSGPACK, "Accept": MSGPACK},
    )  # fmt: skip
    assert status == 201
    assert headers["Content-Type"] == MSGPACK
    created = msgpack.unpackb(body)
    assert created["name"] == "packed"
    assert created["permissions"] == ["GET"]

    # MessagePack in, JSON out by default.
    status, body, headers = await raw(
        stack, "POST", "/v2/keys",
        data=msgpack.packb({"name": "packed-json", "permissions": ["PUT"]}),
        headers={"X-M2X-KEY": master, "Content-Type": MSGPACK},
    )  # fmt: skip
    assert status == 201
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["name"] == "packed-json"

    # JSON in, MessagePack out; the first acceptable type of Accept wins.
    status, body, headers = await raw(
        stack, "GET", "/v2/keys",
        headers={"X-M2X-KEY": master, "Accept": f"text/html, {MSGPACK};q=0.5"},
    )  # fmt: skip
    assert status == 200
    assert headers["Content-Type"] == MSGPACK
    names = sorted(k["name"] for k in msgpack.unpackb(body)["keys"])
    assert names == ["Primary Key", "packed", "packed-json"]

    # Explicit JSON, and a wildcard, both answer JSON.
    for accept in ("application/json", "*/*"):
        status, body, headers = await raw(stack, "GET", "/v2/status", headers={"Accept": accept})
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"api": "OK", "keys": "OK", "storage": "OK", "triggers": "OK"}

    # Error bodies follow Accept too.
    status, body, headers = await raw(stack, "GET", "/v2/keys", headers={"Accept": MSGPACK})
    assert status == 401
    assert headers["Content-Type"] == MSGPACK
    assert msgpack.unpackb(body)["message"] == "Unauthorized"


async def test_jsonp_callback_and_pretty_printing(stack: Stack) -> None:
    _, master = await stack.new_account()

    status, body, headers = await raw(stack, "GET", "/v2/status?callback=foo")
    assert status == 200
    assert headers["Content-Type"].startswith("application/javascript")
    text = body.decode()
    assert text.startswith("foo(") and text.endswith(");")
    assert json.loads(text[len("foo(") : -len(");")]) == {
        "api": "OK",
        "keys": "OK",
        "storage": "OK",
        "triggers": "OK",
    }

    status, body, _ = await raw(
        stack, "GET", "/v2/keys?callback=window.m2x.got_keys", headers={"X-M2X-KEY": master}
    )
    assert status == 200
    assert body.decode().startswith("window.m2x.got_keys({")

    # A callback that is not a JavaScript identifier is refused rather than echoed.
    status, body, headers = await raw(stack, "GET", "/v2/status?callback=alert(1)")
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["message"] == "Bad Request"

    compact = b'{"api":"OK","keys":"OK","storage":"OK","triggers":"OK"}'
    for query in ("?pretty", "?pretty=true"):
        status, body, headers = await raw(stack, "GET", "/v2/status" + query)
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert b"\n  " in body
        assert json.loads(body) == {"api": "OK", "keys": "OK", "storage": "OK", "triggers": "OK"}
    for query in ("?pretty=false", ""):
        status, body, _ = await raw(stack, "GET", "/v2/status" + query)
        assert (status, body) == (200, compact)

    # `pretty` is valid on any request, e.g. an error.
    status, body, _ = await raw(stack, "GET", "/v2/keys?pretty")
    assert status == 401
    assert b"\n  " in body
    assert json.loads(body)["message"] == "Unauthorized"


async def test_head_answers_get_headers_without_a_body(stack: Stack) -> None:
    _, master = await stack.new_account()
    routes = [
        ("/v2/status", None),
        ("/v2/time", None),
        ("/v2/time/seconds", None),
        ("/v2/time/millis", None),
        ("/v2/time/iso8601", None),
        ("/v2/keys", master),
        (f"/v2/keys/{master}", master),
    ]
    for path, key in routes:
        get_head, get_body = await wire(stack, "GET", path, key)
        head_head, head_body = await wire(stack, "HEAD", path, key)
        assert get_head.startswith("HTTP/1.1 200"), (path, get_head)
        assert head_head.startswith("HTTP/1.1 200"), (path, head_head)
        assert get_body, path
        assert head_body == b"", path
        get_fields, head_fields = header_map(get_head), header_map(head_head)
        assert get_fields.keys() == head_fields.keys(), path
        for name in get_fields.keys() - PER_REQUEST:
            assert head_fields[name] == get_fields[name], (path, name)
        assert int(head_fields["content-length"]) == len(get_body), path


async def test_options_lists_the_methods_the_caller_may_use(stack: Stack) -> None:
    _, master = await stack.new_account()
    _, reader, _ = await stack.request(
        "POST", "/v2/keys", key=master, json={"name": "reader", "permissions": ["GET"]}
    )

    def allow(headers: Any) -> set[str]:
        return {m.strip() for m in headers["Allow"].split(",")}

    cases = [
        ("/v2/keys", None, {"OPTIONS"}),
        ("/v2/keys", master, {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/v2/keys", reader["key"], {"GET", "HEAD", "OPTIONS"}),
        (f"/v2/keys/{master}", master, {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        (f"/v2/keys/{master}", reader["key"], {"GET", "HEAD", "OPTIONS"}),
        ("/v2/time", None, {"GET", "HEAD", "OPTIONS"}),
        ("/v2/status", master, {"GET", "HEAD", "OPTIONS"}),
    ]
    for path, key, expected in cases:
        status, body, headers = await stack.request("OPTIONS", path, key=key)
        assert status == 200, (path, key)
        assert body is None, (path, key)
        assert allow(headers) == expected, (path, key)


async def test_unknown_paths_and_methods(stack: Stack) -> None:
    _, master = await stack.new_account()

    for key in (None, master):
        status, body, _ = await stack.request("GET", "/v2/no/such/thing", key=key)
        assert status == 404
        assert body["message"] == "Not Found"
        assert body["description"].startswith("The resource you requested could not be found.")
    status, _, _ = await stack.request("OPTIONS", "/v2/no/such/thing", key=master)
    assert status == 404

    cases = [
        ("DELETE", "/v2/keys", master, {"GET", "HEAD", "POST", "OPTIONS"}),
        ("PATCH", "/v2/keys", master, {"GET", "HEAD", "POST", "OPTIONS"}),
        ("POST", "/v2/time", None, {"GET", "HEAD", "OPTIONS"}),
        ("PUT", "/v2/status", None, {"GET", "HEAD", "OPTIONS"}),
        ("GET", f"/v2/keys/{master}/regenerate", master, {"POST", "OPTIONS"}),
    ]
    for method, path, key, allowed in cases:
        status, body, headers = await stack.request(method, path, key=key)
        assert status == 405, (method, path)
        assert body["message"] == "Method Not Allowed"
        assert {m.strip() for m in headers["Allow"].split(",")} == allowed, (method, path)


async def test_unsupported_media_types_are_refused_with_415(stack: Stack) -> None:
    _, master = await stack.new_account()
    valid = json.dumps({"name": "k", "permissions": ["GET"]}).encode()
    cases = [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/xml"},
        {"Content-Type": "application/json; charset=iso-8859-1"},
        {"Content-Type": "application/json", "Accept": "text/html"},
    ]
    for headers in cases:
        status, body, _ = await stack.request(
            "POST", "/v2/keys", key=master, data=valid, headers=headers
        )
        assert status == 415, headers
        assert body["message"] == "Unsupported Media Type", headers
        assert body["description"], headers

    # UTF-8 declared explicitly is fine.
    status, _, _ = await stack.request(
        "POST", "/v2/keys", key=master, data=valid,
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )  # fmt: skip
    assert status == 201
    # Nothing was created by the refused requests.
    _, listing, _ = await stack.request("GET", "/v2/keys", key=master)
    assert len(listing["keys"]) == 2


async def test_malformed_bodies_are_refused_with_400(stack: Stack) -> None:
    _, master = await stack.new_account()
    json_type, msgpack_type = {"Content-Type": "application/json"}, {"Content-Type": MSGPACK}
    cases = [
        (b'{"name": "k", "permissions": ["GET"]', json_type),  # truncated JSON
        (b"not json at all", json_type),
        (b'[{"name": "k", "permissions": ["GET"]}]', json_type),  # an array, not an object
        (b'"just a string"', json_type),
        (b'{"name": "caf\xe9", "permissions": ["GET"]}', json_type),  # Latin-1, not UTF-8
        (b"\xc1", msgpack_type),  # a byte MessagePack never uses
        (b"\x92\x01", msgpack_type),  # an array announced with 2 items, holding 1
        (msgpack.packb(["GET"]), msgpack_type),  # valid MessagePack, but not a map
    ]
    for data, headers in cases:
        status, body, _ = await stack.request(
            "POST", "/v2/keys", key=master, data=data, headers=headers
        )
        assert status == 400, data
        assert body["message"] == "Bad Request", data
        assert body["description"], data
    _, listing, _ = await stack.request("GET", "/v2/keys", key=master)
    assert len(listing["keys"]) == 1


async def test_bodies_over_the_size_limit_get_413(tmp_path: Path) -> None:
    async with start_stack(tmp_path, *NO_LIMITS, "--max-body-bytes", "1000") as stack:
        _, master = await stack.new_account()
        big = {"name": "big", "permissions": ["GET"], "padding": "x" * 2000}
        status, body, _ = await stack.request("POST", "/v2/keys", key=master, json=big)
        assert status == 413
        assert body["message"] == "Payload Too Large"
        assert "1000" in body["description"]

        small = {"name": "small", "permissions": ["GET"], "padding": "x" * 800}
        status, body, _ = await stack.request("POST", "/v2/keys", key=master, json=small)
        assert status == 201
        assert body["name"] == "small"


async def test_expect_100_continue_is_answered_before_the_body(stack: Stack) -> None:
    """Clients that send `Expect: 100-continue` (curl with large bodies) wait for the interim
    answer before sending the body; other expectations are refused in the API's error format."""
    _, master = await stack.new_account()
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"name": "expecting", "permissions": ["GET"]}).encode()

    async def exchange(expect: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /v2/keys HTTP/1.1\r\nHost: {host}\r\nX-M2X-KEY: {master}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Expect: {expect}\r\nConnection: close\r\n\r\n")  # fmt: skip
        writer.write(head.encode())
        await writer.drain()
        # No body sent yet: the server must speak first.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return interim, reader, writer

    interim, reader, writer = await exchange("100-continue")
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    final = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, payload = final.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 "), final
    assert json.loads(payload)["name"] == "expecting"

    answer, reader, writer = await exchange("something-else")
    writer.close()
    assert answer.startswith(b"HTTP/1.1 417 "), answer
    rest = await asyncio.wait_for(reader.read(), 5)
    assert json.loads(rest)["message"] == "Expectation Failed"
    _, listing, _ = await stack.request("GET", "/v2/keys", key=master)
    assert [k["name"] for k in listing["keys"] if k["name"] == "expecting"] == ["expecting"]


async def test_time_routes_tell_the_server_clock(stack: Stack) -> None:
    before = now_ms()
    status, seconds, headers = await stack.request("GET", "/v2/time/seconds")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert re.fullmatch(r"\d+", seconds)
    assert before // 1000 - 1 <= int(seconds) <= now_ms() // 1000 + 1

    before = now_ms()
    status, millis, headers = await stack.request("GET", "/v2/time/millis")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert re.fullmatch(r"\d+", millis)
    assert before - 1000 <= int(millis) <= now_ms() + 1000

    before = now_ms()
    status, iso, headers = await stack.request("GET", "/v2/time/iso8601")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert ISO_MS.fullmatch(iso), iso
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    assert before - 1000 <= moment.timestamp() * 1000 <= now_ms() + 1000

    before = now_ms()
    status, body, headers = await stack.request("GET", "/v2/time")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == {"seconds", "millis", "iso8601"}
    assert before - 1000 <= body["millis"] <= now_ms() + 1000
    assert body["seconds"] == body["millis"] // 1000
    assert ISO_MS.fullmatch(body["iso8601"])
    moment = datetime.fromisoformat(body["iso8601"].replace("Z", "+00:00"))
    assert round(moment.timestamp() * 1000) == body["millis"]


async def test_text_routes_answer_clients_that_accept_text_plain(stack: Stack) -> None:
    """The time routes answer text/plain, so `Accept: text/plain` must not be refused."""
    for path in ("/v2/time/seconds", "/v2/time/millis", "/v2/time/iso8601"):
        status, body, headers = await stack.request("GET", path, headers={"Accept": "text/plain"})
        assert status == 200, (path, body)
        assert headers["Content-Type"].startswith("text/plain")


async def test_status_needs_no_key(stack: Stack) -> None:
    _, master = await stack.new_account()
    for key in (None, master, "f" * 32):
        status, body, headers = await stack.request("GET", "/v2/status", key=key)
        assert status == 200, key
        assert body == {"api": "OK", "keys": "OK", "storage": "OK", "triggers": "OK"}
        assert headers["X-M2X-VERSION"]


async def test_every_answer_carries_a_request_id(stack: Stack) -> None:
    """The client's X-Request-Id is echoed; otherwise each request gets a fresh one."""
    _, _, headers = await raw(stack, "GET", "/v2/status", headers={"X-Request-Id": "mine-42"})
    assert headers["X-Request-Id"] == "mine-42"
    fresh = [(await raw(stack, "GET", "/v2/status"))[2]["X-Request-Id"] for _ in range(20)]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in fresh)
    assert len(set(fresh)) == len(fresh)


async def test_large_answers_are_compressed_when_the_client_accepts_it(stack: Stack) -> None:
    """gzip for bodies over ~1.4 KB when asked (both the in-place path up to 64 KiB and the
    thread-pool one above), the same JSON as without; small answers stay plain."""
    _, master = await stack.new_account()
    _, device, _ = await stack.request("POST", "/v2/devices", key=master,
                                       json={"name": "big", "visibility": "private"})  # fmt: skip
    stream = f"/v2/devices/{device['id']}/streams/t"
    await stack.request("PUT", stream, key=master, json={"type": "numeric"})
    values = [{"timestamp": f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.500Z",
               "value": i * 1.25} for i in range(2000)]  # fmt: skip
    status, _, _ = await stack.request("POST", f"{stream}/values", key=master, json={"values": values})  # fmt: skip
    assert status == 202
    for limit, size in ((100, "under 64 KiB"), (2000, "over 64 KiB")):
        path = f"{stream}/values?limit={limit}"
        status, plain, headers = await raw(stack, "GET", path, headers={"X-M2X-KEY": master, "Accept-Encoding": "identity"})  # fmt: skip
        assert status == 200 and "Content-Encoding" not in headers
        assert (len(plain) < 64 * 1024) == (limit == 100), size
        status, body, headers = await raw(stack, "GET", path, headers={"X-M2X-KEY": master, "Accept-Encoding": "gzip"})  # fmt: skip
        assert status == 200 and headers["Content-Encoding"] == "gzip", size
        assert int(headers["Content-Length"]) < len(plain) / 3, size
        assert json.loads(body) == json.loads(plain), size  # the client decompressed it
    status, _, headers = await raw(stack, "GET", "/v2/status", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers
