"""The API pipeline (route, authenticate, limit, authorize, handle) with a fake keys gateway.

A test-only device-scoped route stands in for the device routes, which do not exist yet; the
clock of the rate limiter is pinned so that every request of a test falls in one window.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.api import api as api_module
from adapters.api import ratelimit
from adapters.api.api import Api, Limits
from adapters.api.context import Call, Services
from adapters.api.messages import ApiRequest, ApiResponse
from adapters.api.principals import Principal
from adapters.api.routes import Access, RouteTable
from m2x.keys.v1 import keys_pb2 as pb

ACCOUNT = "a" * 32
DEVICE = "d" * 32
OTHER_DEVICE = "e" * 32
VALUE = "/v2/devices/{device}/streams/{stream}/value"
SERIAL_VALUE = "/v2/devices/serial/{serial}/streams/{stream}/value"
ALL_METHODS = ("GET", "POST", "PUT", "DELETE")
NOW = 1_700_000_000.25  # the pinned clock, a quarter into a Unix second


class FakeKeys:
    """Stands in for KeysGateway: credential -> Principal."""

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}

    def add(self, secret: str, **fields: Any) -> str:
        fields.setdefault("kind", pb.KEY_KIND_MASTER)
        fields.setdefault("permissions", ALL_METHODS)
        fields.setdefault("account_active", True)
        record = pb.ApiKey(key=secret, account_id=ACCOUNT, name=secret, **fields)
        self.principals[secret] = Principal.from_pb(record)
        return secret

    async def principal(self, credential: str) -> Principal | None:
        return self.principals.get(credential)


async def accepted(c: Call) -> ApiResponse:
    return ApiResponse(202, {"status": "accepted"})


async def value(c: Call) -> ApiResponse:
    return ApiResponse(200, {"value": 1, "device": c.params.get("device")})


async def master_only(c: Call) -> ApiResponse:
    return ApiResponse(200, {"account": c.account_id})


def routes() -> RouteTable:
    table = RouteTable()
    table.add("GET", VALUE, value, Access.DEVICE)
    table.add("PUT", VALUE, accepted, Access.DEVICE)
    table.add("PUT", SERIAL_VALUE, accepted, Access.DEVICE)
    table.add("GET", "/v2/keys", master_only, Access.MASTER)
    return table


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A clock the rate limiter reads; tests move `clock.now`."""
    fake = SimpleNamespace(now=NOW)
    fake_time = SimpleNamespace(time=lambda: fake.now, time_ns=time.time_ns)
    monkeypatch.setattr(ratelimit, "time", fake_time)
    monkeypatch.setattr(api_module, "time", fake_time)
    return fake


@pytest.fixture
def keys() -> FakeKeys:
    return FakeKeys()


def make_api(keys: FakeKeys, **limits: int) -> Api:
    return Api(routes(), Services(keys=keys), Limits(**limits))  # type: ignore[arg-type]


def request(method: str, path: str, key: str | None = None, **kwargs: Any) -> ApiRequest:
    kwargs.setdefault("client", "127.0.0.1")
    return ApiRequest(method=method, path=path, credential=key, **kwargs)


def value_path(device: str = DEVICE, stream: str = "temperature") -> str:
    return f"/v2/devices/{device}/streams/{stream}/value"


async def test_device_key_reaches_only_its_own_device(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)
    key = keys.add("device-key", kind=pb.KEY_KIND_DEVICE, device_id=DEVICE)

    answer = await api.handle(request("PUT", value_path(), key))
    assert (answer.status, answer.body) == (202, {"status": "accepted"})
    answer = await api.handle(request("GET", value_path(stream="humidity"), key))
    assert answer.status == 200

    for method in ("PUT", "GET"):
        answer = await api.handle(request(method, value_path(OTHER_DEVICE), key))
        assert (answer.status, answer.body) == (403, {
            "message": "Forbidden",
            "description": "Your API key is not allowed to access this resource.",
        }), method  # fmt: skip

    # Nor a master-only route.
    answer = await api.handle(request("GET", "/v2/keys", key))
    assert (answer.status, answer.body) == (403, {
        "message": "Forbidden", "description": "This resource requires a Master API key.",
    })  # fmt: skip


async def test_stream_restricted_key_reaches_only_its_stream(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)
    key = keys.add("stream-key", kind=pb.KEY_KIND_DEVICE, device_id=DEVICE, stream="temperature")

    assert (await api.handle(request("PUT", value_path(stream="temperature"), key))).status == 202
    assert (await api.handle(request("GET", value_path(stream="temperature"), key))).status == 200
    answer = await api.handle(request("PUT", value_path(stream="humidity"), key))
    assert (answer.status, answer.body["message"]) == (403, "Forbidden")
    answer = await api.handle(request("PUT", value_path(OTHER_DEVICE, "temperature"), key))
    assert answer.status == 403


async def test_master_key_reaches_any_device(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)
    key = keys.add("master-key")
    for device in (DEVICE, OTHER_DEVICE, "any-device-id"):
        answer = await api.handle(request("PUT", value_path(device), key))
        assert answer.status == 202, device
    answer = await api.handle(request("PUT", "/v2/devices/serial/SN-1/streams/t/value", key))
    assert answer.status == 202


async def test_no_key_on_a_device_route_is_401(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)
    for credential in (None, "unknown"):
        answer = await api.handle(request("PUT", value_path(), credential))
        assert (answer.status, answer.body["message"]) == (401, "Unauthorized"), credential


async def test_per_device_write_limit(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys, per_ip=100, per_key=100, per_device_writes=3)
    key = keys.add("master-key")

    for remaining in ("2", "1", "0"):
        answer = await api.handle(request("PUT", value_path(), key))
        assert answer.status == 202
        assert answer.headers["X-RateLimit-Limit"] == "3"
        assert answer.headers["X-RateLimit-Remaining"] == remaining
        assert answer.headers["X-RateLimit-Reset"] == str(int(NOW) + 1)
    answer = await api.handle(request("PUT", value_path(stream="another-stream"), key))
    assert answer.status == 429
    assert set(answer.body) == {"message"}
    assert "3" in answer.body["message"]
    assert answer.headers["X-RateLimit-Limit"] == "3"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["Retry-After"] == "1"

    # Reads of that device, and writes to another device, are not held back.
    answer = await api.handle(request("GET", value_path(), key))
    assert (answer.status, answer.headers["X-RateLimit-Limit"]) == (200, "100")
    answer = await api.handle(request("PUT", value_path(OTHER_DEVICE), key))
    assert (answer.status, answer.headers["X-RateLimit-Limit"]) == (202, "3")
    # Nor writes from another key: the bucket is the device's, whichever key writes.
    other = keys.add("other-master")
    answer = await api.handle(request("PUT", value_path(), other))
    assert answer.status == 429

    # The next second opens a new window.
    clock.now = NOW + 1
    answer = await api.handle(request("PUT", value_path(), key))
    assert (answer.status, answer.headers["X-RateLimit-Remaining"]) == (202, "2")
    assert answer.headers["X-RateLimit-Reset"] == str(int(NOW) + 2)


async def test_per_device_write_limit_via_serial_counts_the_serial(
    keys: FakeKeys, clock: Any
) -> None:
    api = make_api(keys, per_ip=100, per_key=100, per_device_writes=3)
    key = keys.add("master-key")
    serial_path = "/v2/devices/serial/SN-1/streams/temperature/value"

    for remaining in ("2", "1", "0"):
        answer = await api.handle(request("PUT", serial_path, key))
        assert (answer.status, answer.headers["X-RateLimit-Remaining"]) == (202, remaining)
        assert answer.headers["X-RateLimit-Limit"] == "3"
    answer = await api.handle(request("PUT", serial_path, key))
    assert answer.status == 429
    assert answer.headers["X-RateLimit-Limit"] == "3"

    # A device whose id is the same string is another bucket; so is another serial.
    answer = await api.handle(request("PUT", value_path("SN-1"), key))
    assert (answer.status, answer.headers["X-RateLimit-Remaining"]) == (202, "2")
    answer = await api.handle(request("PUT", "/v2/devices/serial/SN-2/streams/t/value", key))
    assert (answer.status, answer.headers["X-RateLimit-Remaining"]) == (202, "2")


async def test_a_write_over_the_key_limit_is_refused_even_if_the_device_has_room(
    keys: FakeKeys, clock: Any
) -> None:
    api = make_api(keys, per_ip=100, per_key=2, per_device_writes=3)
    key = keys.add("master-key")
    assert (await api.handle(request("PUT", value_path(), key))).status == 202
    assert (await api.handle(request("PUT", value_path(OTHER_DEVICE), key))).status == 202
    answer = await api.handle(request("PUT", value_path("f" * 32), key))
    assert answer.status == 429
    assert "Retry-After" in answer.headers


async def test_a_429_never_reports_requests_remaining(keys: FakeKeys, clock: Any) -> None:
    """A write refused by the key's limit must not tell the client it has requests left."""
    api = make_api(keys, per_ip=100, per_key=2, per_device_writes=3)
    key = keys.add("master-key")
    await api.handle(request("GET", value_path(), key))
    await api.handle(request("GET", value_path(), key))
    answer = await api.handle(request("PUT", value_path(), key))
    assert answer.status == 429
    assert answer.headers["X-RateLimit-Remaining"] == "0"


async def test_restrictions_answer_403_with_their_message(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)
    past_ms = int((time.time() - 60) * 1000)
    future_ms = int((time.time() + 3600) * 1000)
    device = {"kind": pb.KEY_KIND_DEVICE, "device_id": DEVICE}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**device, "expires_at_ms": past_ms}, "Your API key has expired",
         "Regenerate the key or use another one."),
        ({**device, "origins": ["10.0.0.0/8"]}, "Forbidden",
         "Your API key may not be used from this IP address."),
        ({**device, "permissions": ["GET"]}, "Forbidden",
         "Your API key is not allowed to use this HTTP method."),
        ({**device, "account_active": False}, "Account Not Active",
         "Your account has not been activated yet. If you need to re-send the activation "
         "email, please visit https://m2x.att.com/activation-required"),
    ]  # fmt: skip
    for fields, message, description in cases:
        key = keys.add(f"key-{message}-{description[:20]}", **fields)
        answer = await api.handle(request("PUT", value_path(), key))
        assert (answer.status, answer.body) == (
            403, {"message": message, "description": description}
        ), fields  # fmt: skip

    # The same restrictions, satisfied, let the request through.
    for fields in (
        {**device, "expires_at_ms": future_ms},
        {**device, "origins": ["10.0.0.0/8", "127.0.0.1"]},
        {**device, "permissions": ["PUT"]},
    ):
        key = keys.add(f"ok-{sorted(fields.items())}", **fields)
        answer = await api.handle(request("PUT", value_path(), key))
        assert answer.status == 202, fields
    # An IPv4 client seen as IPv4-mapped IPv6 matches an IPv4 origin.
    key = keys.add("mapped", **device, origins=["127.0.0.1"])
    answer = await api.handle(request("PUT", value_path(), key, client="::ffff:127.0.0.1"))
    assert answer.status == 202


async def test_options_lists_what_a_device_key_may_do(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys)

    def allowed(answer: ApiResponse) -> set[str]:
        assert (answer.status, answer.body) == (200, None)
        return {m.strip() for m in answer.headers["Allow"].split(",")}

    cases: list[tuple[dict[str, Any] | None, str, set[str]]] = [
        (None, value_path(), {"OPTIONS"}),
        ({}, value_path(), {"GET", "HEAD", "PUT", "OPTIONS"}),
        ({"device_id": DEVICE}, value_path(), {"GET", "HEAD", "PUT", "OPTIONS"}),
        ({"device_id": DEVICE, "permissions": ["GET"]}, value_path(), {"GET", "HEAD", "OPTIONS"}),
        ({"device_id": DEVICE, "permissions": ["PUT", "POST"]}, value_path(), {"PUT", "OPTIONS"}),
        ({"device_id": DEVICE}, value_path(OTHER_DEVICE), {"OPTIONS"}),
        ({"device_id": DEVICE, "stream": "humidity"}, value_path(), {"OPTIONS"}),
        ({"device_id": DEVICE, "expires_at_ms": 1}, value_path(), {"OPTIONS"}),
        ({"device_id": DEVICE}, "/v2/keys", {"OPTIONS"}),
    ]
    for i, (fields, path, expected) in enumerate(cases):
        key = None
        if fields is not None:
            kind = pb.KEY_KIND_DEVICE if fields.get("device_id") else pb.KEY_KIND_MASTER
            key = keys.add(f"key-{i}", kind=kind, **fields)
        assert allowed(await api.handle(request("OPTIONS", path, key))) == expected, fields


async def test_errors_of_a_known_key_carry_rate_limit_headers(keys: FakeKeys, clock: Any) -> None:
    """Spec §1.11: X-RateLimit-* on every response, including 403/404/405 of a valid key."""
    api = make_api(keys, per_ip=5, per_key=8, per_device_writes=3)
    device_key = keys.add("device-key", kind=pb.KEY_KIND_DEVICE, device_id=DEVICE)
    cases = [
        request("PUT", value_path(OTHER_DEVICE), device_key),  # 403
        request("GET", "/v2/no/such/route", device_key),  # 404
        request("DELETE", value_path(), device_key),  # 405
    ]
    answers = [await api.handle(r) for r in cases]
    assert [a.status for a in answers] == [403, 404, 405]
    assert [a.headers.get("X-RateLimit-Limit") for a in answers] == ["3", "8", "8"]


async def test_unauthenticated_errors_count_once(keys: FakeKeys, clock: Any) -> None:
    """A request is one hit, whether it ends in 200 or in 401/404."""
    api = make_api(keys, per_ip=5, per_key=8, per_device_writes=3)
    paths = ["/v2/keys", value_path(), "/v2/no/such/route", "/v2/keys", "/v2/keys"]
    answers = [await api.handle(request("GET", path)) for path in paths]
    assert [a.status for a in answers] == [401, 401, 404, 401, 401]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
    assert (await api.handle(request("GET", "/v2/keys"))).status == 429


async def test_rate_limit_windows_are_per_client_ip(keys: FakeKeys, clock: Any) -> None:
    api = make_api(keys, per_ip=2, per_key=8, per_device_writes=3)
    table_path = "/v2/keys"
    # OPTIONS needs no key and answers 200 without one.
    for _ in range(2):
        answer = await api.handle(request("OPTIONS", table_path, client="10.0.0.1"))
        assert answer.status == 200
    answer = await api.handle(request("OPTIONS", table_path, client="10.0.0.1"))
    assert answer.status == 429
    answer = await api.handle(request("OPTIONS", table_path, client="10.0.0.2"))
    assert (answer.status, answer.headers["X-RateLimit-Remaining"]) == (200, "1")


async def test_a_failing_handler_is_a_500_not_a_crash(keys: FakeKeys, clock: Any) -> None:
    async def broken(c: Call) -> ApiResponse:
        raise RuntimeError("boom")

    table = routes()
    table.add("GET", "/v2/broken", broken, Access.PUBLIC)
    api = Api(table, Services(keys=keys), Limits())  # type: ignore[arg-type]
    answer = await api.handle(request("GET", "/v2/broken"))
    assert answer.status == 500
    assert answer.body["message"] == "Internal Server Error"
    assert "boom" not in str(answer.body)
