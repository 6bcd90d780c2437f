"""Rate limits of spec §1.11 (limited_stack: 5/s per IP, 8/s per key) through the real adapter.

The per-device write rule needs a device route, which the API does not have yet; it is covered
through the API layer in tests/unit/test_api_pipeline.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.stack import Stack

Response = tuple[int, Any, Any]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


async def burst(send: Callable[[], Awaitable[Response]], count: int) -> list[Response]:
    """`count` requests inside one rate-limit window, started at the top of a fresh second.

    The window of each answer is its X-RateLimit-Reset; if the burst still straddled two
    windows (a slow machine), it is tried once more in the next second.
    """
    for _ in range(2):
        await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.005)
        answers = [await send() for _ in range(count)]
        if len({headers["X-RateLimit-Reset"] for _, _, headers in answers}) == 1:
            return answers
    raise AssertionError("could not fit the burst into one second")


def assert_rate_headers(headers: Any, limit: int, before: float, after: float) -> None:
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert 0 <= int(headers["X-RateLimit-Remaining"]) < limit
    # The next window opens at the next whole Unix second.
    assert int(before) + 1 <= int(headers["X-RateLimit-Reset"]) <= int(after) + 1


def assert_too_many(answer: Response, limit: int) -> None:
    status, body, headers = answer
    assert status == 429
    assert set(body) == {"message"}
    assert str(limit) in body["message"]
    assert 1 <= int(headers["Retry-After"]) <= 2
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert headers["X-RateLimit-Remaining"] == "0"


async def next_window_allows(send: Callable[[], Awaitable[Response]]) -> Response:
    """Poll until the limit lifts (the next second); the answer that got through."""
    async with asyncio.timeout(5):
        while True:
            answer = await send()
            if answer[0] != 429:
                return answer
            await asyncio.sleep(0.05)


async def test_headers_on_public_unauthorized_and_not_found_answers(
    limited_stack: Stack,
) -> None:
    stack = limited_stack
    _, master = await stack.new_account()
    cases = [
        ("GET", "/v2/time", None, 200, 5),
        ("GET", "/v2/keys", None, 401, 5),
        ("GET", "/v2/no/such/route", None, 404, 5),
        ("GET", "/v2/keys", master, 200, 8),
    ]
    for method, path, key, expected_status, limit in cases:
        before = time.time()
        status, _, headers = await stack.request(method, path, key=key)
        after = time.time()
        assert status == expected_status, path
        assert_rate_headers(headers, limit, before, after)


async def test_headers_on_authenticated_error_answers(limited_stack: Stack) -> None:
    """Spec §1.11: the headers are on *every* response, errors of a known key included."""
    stack = limited_stack
    _, master = await stack.new_account()
    _, reader, _ = await stack.request(
        "POST", "/v2/keys", key=master, json={"name": "reader", "permissions": ["GET"]}
    )
    cases = [
        ("GET", "/v2/no/such/route", master, None, 404),
        ("GET", "/v2/keys/" + "0" * 32, master, None, 404),
        ("DELETE", "/v2/keys", master, None, 405),
        ("POST", "/v2/keys", master, {"name": "no permissions"}, 422),
        ("POST", "/v2/keys", master, [], 400),
        ("POST", "/v2/keys", reader["key"], {"name": "x", "permissions": ["GET"]}, 403),
    ]
    missing = []
    for method, path, key, body, expected_status in cases:
        before = time.time()
        status, _, headers = await stack.request(method, path, key=key, json=body)
        after = time.time()
        assert status == expected_status, (method, path)
        if not all(name in headers for name in RATE_HEADERS):
            missing.append(f"{method} {path} -> {status}")
            continue
        assert_rate_headers(headers, 8, before, after)
    assert missing == [], "answers without X-RateLimit-* headers"


async def test_unauthenticated_requests_are_limited_per_ip(limited_stack: Stack) -> None:
    stack = limited_stack
    _, master = await stack.new_account()

    async def public() -> Response:
        return await stack.request("GET", "/v2/time")

    before = time.time()
    answers = await burst(public, 6)
    after = time.time()
    for i, (status, _, headers) in enumerate(answers[:5]):
        assert status == 200, i
        assert headers["X-RateLimit-Remaining"] == str(4 - i)
        assert_rate_headers(headers, 5, before, after)
    assert_too_many(answers[5], 5)
    assert "IP address" in answers[5][1]["message"]

    # Keys are counted on their own: the same client with a key is not limited by its IP.
    status, _, headers = await stack.request("GET", "/v2/keys", key=master)
    if headers["X-RateLimit-Reset"] == answers[5][2]["X-RateLimit-Reset"]:
        assert status == 200
        assert headers["X-RateLimit-Limit"] == "8"

    status, _, headers = await next_window_allows(public)
    assert status == 200
    assert int(headers["X-RateLimit-Reset"]) > int(answers[5][2]["X-RateLimit-Reset"])


async def test_unauthorized_answers_count_once_against_the_ip(limited_stack: Stack) -> None:
    stack = limited_stack

    async def no_key() -> Response:
        return await stack.request("GET", "/v2/keys")

    answers = await burst(no_key, 6)
    for i, (status, _, headers) in enumerate(answers[:5]):
        assert (status, headers["X-RateLimit-Remaining"]) == (401, str(4 - i)), i
    assert_too_many(answers[5], 5)


async def test_authenticated_requests_are_limited_per_key(limited_stack: Stack) -> None:
    stack = limited_stack
    _, master = await stack.new_account()
    _, other, _ = await stack.request(
        "POST", "/v2/keys", key=master, json={"name": "other", "permissions": ["GET"]}
    )

    async def listing() -> Response:
        return await stack.request("GET", "/v2/keys", key=master)

    before = time.time()
    answers = await burst(listing, 9)
    after = time.time()
    for i, (status, _, headers) in enumerate(answers[:8]):
        assert status == 200, i
        assert headers["X-RateLimit-Remaining"] == str(7 - i)
        assert_rate_headers(headers, 8, before, after)
    assert_too_many(answers[8], 8)
    assert "API key" in answers[8][1]["message"]

    # Another key of the same account, and the public routes, are not affected.
    window = answers[8][2]["X-RateLimit-Reset"]
    status, _, headers = await stack.request("GET", "/v2/keys", key=other["key"])
    if headers["X-RateLimit-Reset"] == window:
        assert (status, headers["X-RateLimit-Remaining"]) == (200, "7")
    status, _, headers = await stack.request("GET", "/v2/time")
    if headers["X-RateLimit-Reset"] == window:
        assert (status, headers["X-RateLimit-Limit"]) == (200, "5")

    status, _, headers = await next_window_allows(listing)
    assert status == 200
    assert int(headers["X-RateLimit-Reset"]) > int(window)
