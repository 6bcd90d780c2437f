"""Values and locations of spec §4, §7.6-§7.11 and §8 through the real adapter and storage.

Expected samples and statistics are computed here, from the values the test posts.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.support.stack import Stack

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ACCEPTED = {"status": "accepted"}


def iso(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def invalid(**errors: list[str]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": errors}


async def new_device(stack: Stack, **streams: str) -> tuple[str, str]:
    """(master key, '/v2/devices/{id}') of a fresh device with streams name -> type."""
    _, master = await stack.new_account()
    status, body, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "d", "visibility": "private"}
    )
    assert status == 201, body
    base = f"/v2/devices/{body['id']}"
    for name, kind in streams.items():
        status, body, _ = await stack.request(
            "PUT", f"{base}/streams/{name}", key=master, json={"type": kind}
        )
        assert status == 201, body
    return master, base


async def post_values(stack: Stack, master: str, path: str, points: list[tuple[int, Any]]) -> None:
    values = [{"timestamp": iso(ts), "value": v} for ts, v in points]
    status, body, _ = await stack.request("POST", path, key=master, json={"values": values})
    assert (status, body) == (202, ACCEPTED)


async def read(stack: Stack, master: str, path: str, **params: str) -> Any:
    status, body, _ = await stack.request("GET", path, key=master, params=params)
    assert status == 200, (path, params, body)
    return body


async def test_write_routes_and_list_parameters(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric")
    values = f"{base}/streams/t/values"

    before = time.time_ns() // 1_000_000
    status, body, _ = await stack.request("PUT", f"{base}/streams/t/value", key=master,
                                          json={"value": 7})  # fmt: skip
    after = time.time_ns() // 1_000_000
    assert (status, body) == (202, ACCEPTED)
    # Readable at once, stamped with the server's time.
    (only,) = (await read(stack, master, values))["values"]
    assert only["value"] == 7.0
    assert iso(before) <= only["timestamp"] <= iso(after)

    status, _, _ = await stack.request(
        "DELETE", values, key=master, json={"from": iso(before), "end": iso(after)}
    )
    assert status == 204
    points = [(BASE_MS + i * 1000, v) for i, v in enumerate([5, -2.5, 12, 0, 8.25])]
    await post_values(stack, master, values, points)
    body = await read(stack, master, values)
    assert body == {
        "limit": 100, "values": [{"timestamp": iso(ts), "value": v} for ts, v in reversed(points)]
    }  # fmt: skip

    def listed(body: dict[str, Any]) -> list[tuple[str, float]]:
        return [(v["timestamp"], v["value"]) for v in body["values"]]

    def expect(selected: list[tuple[int, Any]]) -> list[tuple[str, float]]:
        return [(iso(ts), float(v)) for ts, v in selected]

    by_time = sorted(points)
    by_value = sorted(points, key=lambda p: p[1])
    assert listed(await read(stack, master, values, dir="asc")) == expect(by_time)
    assert listed(await read(stack, master, values, limit="2")) == expect(by_time[::-1][:2])
    assert listed(await read(stack, master, values, sort="value")) == expect(by_value[::-1])
    assert listed(await read(stack, master, values, sort="value", dir="asc", limit="3")) == (
        expect(by_value[:3])
    )
    # start and end are inclusive and echoed; min and max too.
    body = await read(stack, master, values, start=iso(BASE_MS + 1000), end=iso(BASE_MS + 3000))
    assert (body["start"], body["end"], body["limit"]) == (
        iso(BASE_MS + 1000),
        iso(BASE_MS + 3000),
        100,
    )
    assert listed(body) == expect(by_time[1:4][::-1])
    body = await read(stack, master, values, min="0", max="8.25")
    assert listed(body) == expect([p for p in by_time[::-1] if 0 <= p[1] <= 8.25])
    body = await read(stack, master, values, start="2023-12-31T23:00:00-01:00")
    assert body["start"] == iso(BASE_MS) and len(body["values"]) == 5

    # The multi-stream routes write to the same store.
    status, body, _ = await stack.request("POST", f"{base}/update", key=master,
                                          json={"timestamp": iso(BASE_MS + 10_000),
                                                "values": {"t": 42}})  # fmt: skip
    assert (status, body) == (202, ACCEPTED)
    status, body, _ = await stack.request(
        "POST", f"{base}/updates", key=master,
        json={"values": {"t": [{"timestamp": iso(BASE_MS + 11_000), "value": 43},
                               {"timestamp": iso(BASE_MS + 12_000), "value": "44.5"}]}},
    )  # fmt: skip
    assert (status, body) == (202, ACCEPTED)
    body = await read(stack, master, values, limit="3")
    assert listed(body) == expect([(BASE_MS + 12_000, 44.5), (BASE_MS + 11_000, 43),
                                   (BASE_MS + 10_000, 42)])  # fmt: skip
    status, stream, _ = await stack.request("GET", f"{base}/streams/t", key=master)
    assert (stream["value"], stream["latest_value_at"]) == (44.5, iso(BASE_MS + 12_000))


async def test_timestamps_are_normalised_and_rewrites_replace(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric")
    path = f"{base}/streams/t"
    writes = [
        ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00.000Z"),
        ("2023-12-31T19:00:01.5-05:00", "2024-01-01T00:00:01.500Z"),
        ("2024-01-01T05:30:02.25+05:30", "2024-01-01T00:00:02.250Z"),
        ("2024-01-01T00:00:03.123456Z", "2024-01-01T00:00:03.123Z"),
        ("2024-01-01T00:00:04.999999Z", "2024-01-01T00:00:04.999Z"),  # truncated, not rounded
        ("2024-01-01T00:00:05", "2024-01-01T00:00:05.000Z"),  # no offset: UTC
    ]
    for i, (sent, _) in enumerate(writes):
        status, _, _ = await stack.request(
            "PUT", f"{path}/value", key=master, json={"value": i, "timestamp": sent}
        )
        assert status == 202, sent
    body = await read(stack, master, f"{path}/values", dir="asc")
    assert body["values"] == [{"timestamp": stored, "value": float(i)}
                              for i, (_, stored) in enumerate(writes)]  # fmt: skip

    # A second write at the same instant, in any notation, replaces the first.
    status, _, _ = await stack.request(
        "PUT", f"{path}/value", key=master,
        json={"value": 100, "timestamp": "2023-12-31T23:00:00-01:00"},
    )  # fmt: skip
    assert status == 202
    await post_values(stack, master, f"{path}/values", [(BASE_MS + 1500, 101)])
    status, _, _ = await stack.request(
        "POST", f"{base}/update", key=master,
        json={"timestamp": "2024-01-01T00:00:02.250Z", "values": {"t": 102}},
    )  # fmt: skip
    assert status == 202
    body = await read(stack, master, f"{path}/values", dir="asc", limit="3")
    assert body["values"] == [
        {"timestamp": "2024-01-01T00:00:00.000Z", "value": 100.0},
        {"timestamp": "2024-01-01T00:00:01.500Z", "value": 101.0},
        {"timestamp": "2024-01-01T00:00:02.250Z", "value": 102.0},
    ]
    assert len((await read(stack, master, f"{path}/values"))["values"]) == len(writes)
    # Within one request too, the later entry wins.
    await post_values(stack, master, f"{path}/values", [(BASE_MS, 1), (BASE_MS, 2)])
    body = await read(stack, master, f"{path}/values", dir="asc", limit="1")
    assert body["values"] == [{"timestamp": "2024-01-01T00:00:00.000Z", "value": 2.0}]


async def test_value_formats(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric", s="alphanumeric")
    points = [(BASE_MS, 1.5), (BASE_MS + 60_000, -2), (BASE_MS + 120_000, 3)]
    await post_values(stack, master, f"{base}/streams/t/values", points)
    await post_values(stack, master, f"{base}/streams/s/values",
                      [(BASE_MS + 60_000, "a,b"), (BASE_MS + 180_000, 'say "hi"')])  # fmt: skip
    values = f"{base}/streams/t/values"
    plain = await read(stack, master, values)
    assert await read(stack, master, values + ".json") == plain

    status, text, headers = await stack.request("GET", values + ".csv", key=master)
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(text))) == [
        ["timestamp", "value"],
        *[[iso(ts), repr(float(v))] for ts, v in reversed(points)],
    ]
    status, text, _ = await stack.request("GET", values + ".csv", key=master,
                                          params={"limit": "1", "dir": "asc"})  # fmt: skip
    assert text == f"timestamp,value\n{iso(BASE_MS)},1.5\n"

    async def raw(path: str, **headers: str) -> tuple[int, str, bytes]:
        headers["X-M2X-KEY"] = master
        async with stack.session.get(stack.url + path, headers=headers) as response:
            return response.status, response.headers["Content-Type"], await response.read()

    status, content_type, data = await raw(values + ".msgpack")
    assert (status, content_type) == (200, "application/x-msgpack")
    assert msgpack.unpackb(data) == plain
    status, content_type, data = await raw(values, Accept="application/x-msgpack")
    assert (status, content_type, msgpack.unpackb(data)) == (200, "application/x-msgpack", plain)

    # Device-wide values in the same formats; CSV has a column per stream, blanks where none.
    device_values = await read(stack, master, f"{base}/values")
    assert await read(stack, master, f"{base}/values.json") == device_values
    status, _, data = await raw(f"{base}/values.msgpack")
    assert (status, msgpack.unpackb(data)) == (200, device_values)
    status, text, headers = await stack.request("GET", f"{base}/values.csv", key=master)
    assert headers["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(text))) == [
        ["timestamp", "s", "t"],
        [iso(BASE_MS + 180_000), 'say "hi"', ""],
        [iso(BASE_MS + 120_000), "", "3.0"],
        [iso(BASE_MS + 60_000), "a,b", "-2.0"],
        [iso(BASE_MS), "", "1.5"],
    ]
    # Sampling and search answer JSON under their suffixes too.
    sampling = await read(stack, master, f"{base}/streams/t/sampling", type="sum", interval="60")
    assert await read(stack, master, f"{base}/streams/t/sampling.json", type="sum",
                      interval="60") == sampling  # fmt: skip
    status, searched, _ = await stack.request("POST", f"{base}/values/search.json", key=master,
                                              json={"streams": ["t"]})  # fmt: skip
    assert status == 200 and len(searched["values"]) == 3


async def test_delete_values_range(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric")
    values = f"{base}/streams/t/values"
    points = [(BASE_MS + i * 1000, i) for i in range(6)]
    await post_values(stack, master, values, points)

    # Both ends inclusive; body on DELETE as clients send it.
    status, body, _ = await stack.request("DELETE", values, key=master,
                                          json={"from": iso(BASE_MS + 1000),
                                                "end": "2024-01-01T01:00:03+01:00"})  # fmt: skip
    assert (status, body) == (204, None)
    body = await read(stack, master, values, dir="asc")
    assert [v["value"] for v in body["values"]] == [0.0, 4.0, 5.0]
    # Deleting the newest values moves the stream's current value back.
    status, _, _ = await stack.request(
        "DELETE", values, key=master,
        json={"from": iso(BASE_MS + 4000), "end": iso(BASE_MS + 10_000)},
    )  # fmt: skip
    assert status == 204
    _, stream, _ = await stack.request("GET", f"{base}/streams/t", key=master)
    assert (stream["value"], stream["latest_value_at"]) == (0.0, iso(BASE_MS))
    # An empty range is fine.
    status, _, _ = await stack.request("DELETE", values, key=master,
                                       json={"from": "2030-01-01T00:00:00Z",
                                             "end": "2030-01-02T00:00:00Z"})  # fmt: skip
    assert status == 204

    for body, expected in [
        (None, invalid(**{"from": ["not_present"], "end": ["not_present"]})),
        ({"from": iso(BASE_MS)}, invalid(end=["not_present"])),
        ({"from": "never", "end": iso(BASE_MS)}, invalid(**{"from": ["not_valid"]})),
        ({"from": iso(BASE_MS + 1), "end": iso(BASE_MS)}, invalid(**{"from": ["not_valid"]})),
    ]:
        status, answer, _ = await stack.request("DELETE", values, key=master, json=body)
        assert (status, answer) == (422, expected), body
    body = await read(stack, master, values)
    assert body["values"] == [{"timestamp": iso(BASE_MS), "value": 0.0}]


# Sampling and stats: values spread over several buckets, some on bucket edges.
SAMPLE_POINTS = [
    (0, 3), (1_500, -1.5), (7_250, 10), (13_999, 7.25), (14_000, 0), (59_999, 12),
    (60_000, 4), (61_234, 4), (95_000, 9.5), (119_999, -3), (150_500, 100), (181_000, 2),
    (181_001, 8), (240_000, 6.5), (299_999, 1),
]  # fmt: skip
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "min": min, "max": max, "count": lambda v: float(len(v)), "sum": math.fsum,
    "avg": statistics.fmean, "stddev": statistics.pstdev,
}  # fmt: skip


def expected_samples(points: list[tuple[int, float]], kind: str, interval: int,
                     limit: int = 100) -> list[tuple[str, float]]:  # fmt: skip
    """Newest first: every interval-th value (nth), else `kind` per interval-second bucket."""
    if kind == "nth":
        newest_first = sorted(points, reverse=True)
        return [(iso(ts), float(v)) for ts, v in newest_first[interval - 1 :: interval]][:limit]
    buckets: dict[int, list[float]] = defaultdict(list)
    for ts, v in points:
        buckets[ts // (interval * 1000) * interval * 1000].append(float(v))
    return [(iso(b), AGGREGATES[kind](buckets[b])) for b in sorted(buckets, reverse=True)][:limit]


async def test_sampling_of_every_type(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric", s="alphanumeric")
    points = [(BASE_MS + offset, v) for offset, v in SAMPLE_POINTS]
    await post_values(stack, master, f"{base}/streams/t/values", points)
    sampling = f"{base}/streams/t/sampling"

    for kind in ("nth", *AGGREGATES):
        for interval in (1, 3, 7, 60):
            body = await read(stack, master, sampling, type=kind, interval=str(interval))
            assert set(body) == {"interval", "values"} and body["interval"] == interval
            got = [(v["timestamp"], v["value"]) for v in body["values"]]
            want = expected_samples(points, kind, interval)
            assert [ts for ts, _ in got] == [ts for ts, _ in want], (kind, interval)
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-9), (
                kind, interval
            )  # fmt: skip

    # Default type nth; limit, range and value filters apply before sampling.
    body = await read(stack, master, sampling, interval="2")
    assert [(v["timestamp"], v["value"]) for v in body["values"]] == expected_samples(
        points, "nth", 2
    )
    body = await read(stack, master, sampling, type="count", interval="60", limit="2")
    assert [(v["timestamp"], v["value"]) for v in body["values"]] == expected_samples(
        points, "count", 60, limit=2
    )
    start, end = BASE_MS + 14_000, BASE_MS + 181_000
    body = await read(stack, master, sampling, type="sum", interval="60", start=iso(start),
                      end=iso(end), min="0", max="50")  # fmt: skip
    assert (body["start"], body["end"]) == (iso(start), iso(end))
    selected = [(ts, v) for ts, v in points if start <= ts <= end and 0 <= v <= 50]
    assert [(v["timestamp"], v["value"]) for v in body["values"]] == expected_samples(
        selected, "sum", 60
    )
    # Buckets are aligned to the epoch, not to the first value.
    body = await read(stack, master, sampling, type="count", interval="86400")
    assert body["values"] == [{"timestamp": "2024-01-01T00:00:00.000Z", "value": 15.0}]

    for params, field in [
        ({"type": "avg"}, "interval"),
        ({"type": "avg", "interval": "0"}, "interval"),
        ({"type": "avg", "interval": "ten"}, "interval"),
        ({"type": "median", "interval": "10"}, "type"),
    ]:
        status, body, _ = await stack.request("GET", sampling, key=master, params=params)
        assert (status, list(body["errors"])) == (422, [field]), params
    status, body, _ = await stack.request(
        "GET", f"{base}/streams/s/sampling", key=master, params={"type": "avg", "interval": "10"}
    )
    assert (status, body) == (422, invalid(stream=["not_numeric"]))


async def test_stats(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric", s="alphanumeric", empty="numeric")
    stats = f"{base}/streams/t/stats"
    # The captured fixture of spec §7.11.
    fixture = [120, 120, 100, 100, 50, 50, 100, 120]
    points = [(BASE_MS + i * 60_000, v) for i, v in enumerate(fixture)]
    await post_values(stack, master, f"{base}/streams/t/values", points)
    body = await read(stack, master, stats)
    assert body == {"stats": {"count": 8, "min": 50.0, "max": 120.0, "avg": 95.0,
                              "stddev": pytest.approx(27.386128, abs=1e-6)}}  # fmt: skip
    assert body["stats"]["stddev"] == pytest.approx(statistics.pstdev(fixture), rel=1e-12)

    start, end = BASE_MS + 2 * 60_000, BASE_MS + 6 * 60_000
    body = await read(stack, master, stats, start=iso(start), end=iso(end), min="60")
    selected = [float(v) for ts, v in points if start <= ts <= end and v >= 60]
    assert (body["start"], body["end"]) == (iso(start), iso(end))
    assert body["stats"] == pytest.approx({
        "count": len(selected), "min": min(selected), "max": max(selected),
        "avg": statistics.fmean(selected), "stddev": statistics.pstdev(selected),
    })  # fmt: skip

    empty = {"count": 0, "min": None, "max": None, "avg": None, "stddev": None}
    assert await read(stack, master, f"{base}/streams/empty/stats") == {"stats": empty}
    body = await read(stack, master, stats, start="2030-01-01T00:00:00Z")
    assert body["stats"] == empty
    status, body, _ = await stack.request("GET", f"{base}/streams/s/stats", key=master)
    assert (status, body) == (422, invalid(stream=["not_numeric"]))
    status, body, _ = await stack.request("GET", stats, key=master, params={"start": "later"})
    assert (status, body) == (422, invalid(start=["not_valid"]))


async def test_device_values_and_search(stack: Stack) -> None:
    master, base = await new_device(stack, a="numeric", b="numeric", c="alphanumeric")
    t0, t1, t2, t3 = (BASE_MS + i * 1000 for i in range(4))

    def entries(*points: tuple[int, Any]) -> list[dict[str, Any]]:
        return [{"timestamp": iso(ts), "value": v} for ts, v in points]

    status, body, _ = await stack.request(
        "POST", f"{base}/updates", key=master,
        json={"values": {"a": entries((t0, 1), (t1, 2), (t2, 3)),
                         "b": entries((t1, 10), (t3, 30)),
                         "c": entries((t0, "x"), (t3, "y"))}},
    )  # fmt: skip
    assert (status, body) == (202, ACCEPTED)

    def rows(*expected: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"timestamp": iso(ts), "values": values} for ts, values in expected]

    everything = rows((t3, {"b": 30.0, "c": "y"}), (t2, {"a": 3.0}), (t1, {"a": 2.0, "b": 10.0}),
                      (t0, {"a": 1.0, "c": "x"}))  # fmt: skip
    values = f"{base}/values"
    assert await read(stack, master, values) == {"limit": 100, "values": everything}
    body = await read(stack, master, values, streams="a,b")
    assert body["values"] == rows((t3, {"b": 30.0}), (t2, {"a": 3.0}), (t1, {"a": 2.0, "b": 10.0}),
                                  (t0, {"a": 1.0}))  # fmt: skip
    assert (await read(stack, master, values, limit="2"))["values"] == everything[:2]
    body = await read(stack, master, values, start=iso(t1), end=iso(t2))
    assert body == {"start": iso(t1), "end": iso(t2), "limit": 100, "values": everything[1:3]}
    status, body, _ = await stack.request("GET", values, key=master, params={"streams": "a,zz"})
    assert (status, body) == (422, invalid(zz=["Stream not found"]))

    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({"conditions": {"a": {"gte": 2}}}, everything[1:3]),
        ({"conditions": {"a": {"gt": 1, "lte": 2}, "b": {"eq": 10}}}, everything[2:3]),
        ({"conditions": {"a": {"lt": 0}}}, []),
        ({"conditions": {"c": {"match": "y"}}}, everything[:1]),
        ({"conditions": {"b": {"eq": 10}}, "streams": ["a"]}, rows((t1, {"a": 2.0}))),
        ({"streams": "c"}, rows((t3, {"c": "y"}), (t0, {"c": "x"}))),
        ({"conditions": {"a": {"gte": 1}}, "start": iso(t1), "limit": 1}, everything[1:2]),
    ]
    for search, expected in cases:
        for method in ("GET", "POST"):
            status, body, _ = await stack.request(
                method, f"{base}/values/search", key=master, json=search
            )
            assert status == 200, (method, search, body)
            assert body["values"] == expected, (method, search)
    # Query-string filters on GET also apply.
    body = await read(stack, master, f"{base}/values/search", streams="b")
    assert body["values"] == rows((t3, {"b": 30.0}), (t1, {"b": 10.0}))

    for search, expected_body in [
        ({"conditions": {"zz": {"gt": 1}}}, invalid(zz=["Stream not found"])),
        ({"conditions": {"a": {"between": 1}}}, invalid(conditions=["not_valid"])),
        ({"conditions": {"a": {"gt": "two"}}}, invalid(conditions=["not_numeric"])),
        ({"conditions": ["a"]}, invalid(conditions=["not_valid"])),
        ({"start": "soon"}, invalid(start=["not_valid"])),
    ]:
        status, body, _ = await stack.request(
            "POST", f"{base}/values/search", key=master, json=search
        )
        assert (status, body) == (422, expected_body), search


async def test_update_routes_validate_every_stream_before_writing(stack: Stack) -> None:
    master, base = await new_device(stack, a="numeric", c="alphanumeric")
    ts = "2024-03-01T12:00:00.000Z"
    status, body, _ = await stack.request(
        "POST", f"{base}/update", key=master,
        json={"timestamp": "2024-03-01T13:00:00+01:00", "values": {"a": "12.5", "c": "on"},
              "location": {"name": "Room", "latitude": -37.97, "longitude": "-57.54",
                           "elevation": 5}},
    )  # fmt: skip
    assert (status, body) == (202, ACCEPTED)
    body = await read(stack, master, f"{base}/values")
    assert body["values"] == [{"timestamp": ts, "values": {"a": 12.5, "c": "on"}}]
    location = await read(stack, master, f"{base}/location")
    assert {k: v for k, v in location.items() if k != "waypoints"} == {
        "name": "Room", "latitude": -37.97, "longitude": -57.54, "elevation": 5.0, "timestamp": ts,
    }  # fmt: skip

    later = {"timestamp": "2024-03-02T00:00:00Z"}
    refused: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("update", {**later, "values": {"a": 1, "nope": 2}}, invalid(nope=["Stream not found"])),
        ("update", {**later, "values": {"a": "warm", "c": "x"}}, invalid(a=["not_numeric"])),
        ("update", {**later, "values": {"a": 1, "c": "x" * 5001}}, invalid(c=["not_valid"])),
        ("update", {**later, "values": {"a": 1},
                    "location": {"latitude": 91, "longitude": 0}}, invalid(location=["not_valid"])),
        ("updates", {"values": {"a": [{**later, "value": 1}], "nope": [{**later, "value": 1}]}},
         invalid(nope=["Stream not found"])),
        ("updates", {"values": {"a": [{**later, "value": 1}, {**later, "value": "x"}]}},
         invalid(a=["not_numeric"])),
    ]  # fmt: skip
    for route, request, expected in refused:
        status, body, _ = await stack.request("POST", f"{base}/{route}", key=master, json=request)
        assert (status, body) == (422, expected), (route, request)
    # Nothing of a refused request was written.
    body = await read(stack, master, f"{base}/values")
    assert body["values"] == [{"timestamp": ts, "values": {"a": 12.5, "c": "on"}}]
    waypoints = await read(stack, master, f"{base}/location/waypoints")
    assert len(waypoints["waypoints"]) == 1

    # Single-stream writes name their own stream: 404 rather than 422.
    status, body, _ = await stack.request("PUT", f"{base}/streams/a/value", key=master,
                                          json={"value": "warm"})  # fmt: skip
    assert (status, body) == (422, invalid(value=["not_numeric"]))
    status, body, _ = await stack.request(
        "POST", f"{base}/streams/a/values", key=master,
        json={"values": [{"timestamp": ts, "value": 1}, {"timestamp": ts, "value": "x"}]},
    )  # fmt: skip
    assert (status, body) == (422, invalid(value=["not_numeric"]))


async def test_concurrent_writes_share_calls_but_keep_their_own_answers(stack: Stack) -> None:
    """Writes of concurrent requests travel to storage together; each is answered alone."""
    master, base = await new_device(stack, a="numeric", c="alphanumeric")
    other_master, other = await new_device(stack, a="numeric")
    writes = []
    for n in range(120):
        ts = iso(BASE_MS + n)
        match n % 4:
            case 0:  # fine
                writes.append((f"{base}/streams/a/value", master, {"timestamp": ts, "value": n},
                               202, ACCEPTED))  # fmt: skip
            case 1:  # not a number
                writes.append((f"{base}/streams/a/value", master, {"timestamp": ts, "value": "x"},
                               422, invalid(value=["not_numeric"])))  # fmt: skip
            case 2:  # unknown stream
                writes.append((f"{base}/streams/zz/value", master, {"value": 1}, 404,
                               {"message": "Stream Not Found"}))  # fmt: skip
            case _:  # another account's device, with its own key
                writes.append((f"{other}/streams/a/value", other_master,
                               {"timestamp": ts, "value": -n}, 202, ACCEPTED))  # fmt: skip
    answers = await asyncio.gather(
        *(stack.request("PUT", path, key=key, json=body) for path, key, body, _, _ in writes)
    )
    for (path, _, _, status, expected), (got_status, got, _) in zip(writes, answers, strict=True):
        assert (got_status, {k: got[k] for k in expected}) == (status, expected), (path, got)
    mine = await read(stack, master, f"{base}/streams/a/values", limit="1000")
    assert sorted(v["value"] for v in mine["values"]) == [float(n) for n in range(0, 120, 4)]
    theirs = await read(stack, other_master, f"{other}/streams/a/values", limit="1000")
    assert sorted(v["value"] for v in theirs["values"]) == sorted(
        -float(n) for n in range(3, 120, 4)
    )


async def test_location_routes(stack: Stack) -> None:
    master, base = await new_device(stack)
    location = f"{base}/location"
    status, body, _ = await stack.request("GET", location, key=master)
    assert (status, body) == (204, None)
    assert (await read(stack, master, f"{location}/waypoints")) == {"waypoints": []}

    sent = [
        {"name": "Storage Room", "latitude": 33.6908, "longitude": -117.7597, "elevation": 0,
         "timestamp": "2024-01-01T00:00:00Z"},
        {"latitude": "-37.9", "longitude": "145.1", "timestamp": "2024-01-03T01:00:00+01:00"},
        {"name": "Dock", "latitude": 10, "longitude": 20, "elevation": -3.5,
         "timestamp": "2024-01-02T00:00:00.123456Z"},
    ]  # fmt: skip
    for body in sent:
        status, answer, _ = await stack.request("PUT", location, key=master, json=body)
        assert (status, answer) == (202, ACCEPTED), body
    first = {"name": "Storage Room", "latitude": 33.6908, "longitude": -117.7597,
             "elevation": 0.0, "timestamp": "2024-01-01T00:00:00.000Z"}  # fmt: skip
    second = {"name": None, "latitude": -37.9, "longitude": 145.1, "elevation": None,
              "timestamp": "2024-01-03T00:00:00.000Z"}  # fmt: skip
    third = {"name": "Dock", "latitude": 10.0, "longitude": 20.0, "elevation": -3.5,
             "timestamp": "2024-01-02T00:00:00.123Z"}  # fmt: skip
    # The current location is the newest by timestamp, not the last written.
    body = await read(stack, master, location)
    assert body == {**second, "waypoints": [second, third, first]}
    _, device, _ = await stack.request("GET", base, key=master)
    assert device["location"] == second
    assert await read(stack, master, f"{location}/waypoints") == {
        "waypoints": [second, third, first]
    }
    assert await read(stack, master, f"{location}/waypoints", limit="1") == {"waypoints": [second]}
    body = await read(stack, master, f"{location}/waypoints", start="2024-01-01T00:00:00Z",
                      end="2024-01-02T00:00:00.123Z")  # fmt: skip
    assert body == {"waypoints": [third, first]}

    status, body, _ = await stack.request(
        "DELETE", f"{location}/waypoints", key=master,
        json={"from": "2024-01-02T00:00:00.123Z", "end": "2024-01-03T00:00:00Z"},
    )  # fmt: skip
    assert (status, body) == (202, ACCEPTED)
    assert await read(stack, master, location) == {**first, "waypoints": [first]}
    status, _, _ = await stack.request(
        "DELETE", f"{location}/waypoints", key=master,
        json={"from": "2023-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"},
    )  # fmt: skip
    assert status == 202
    status, _, _ = await stack.request("GET", location, key=master)
    assert status == 204
    _, device, _ = await stack.request("GET", base, key=master)
    assert device["location"] == {}

    for body, expected in [
        ({"latitude": 91, "longitude": 0}, invalid(location=["not_valid"])),
        ({"latitude": 0, "longitude": -180.5}, invalid(location=["not_valid"])),
        ({"latitude": 1}, invalid(longitude=["not_present"])),
        ({}, invalid(latitude=["not_present"], longitude=["not_present"])),
        ({"latitude": "north", "longitude": 1}, invalid(latitude=["not_valid"])),
        ({"latitude": 1, "longitude": 1, "elevation": "high"}, invalid(elevation=["not_valid"])),
        ({"latitude": 1, "longitude": 1, "timestamp": "noon"}, invalid(timestamp=["not_valid"])),
    ]:
        status, answer, _ = await stack.request("PUT", location, key=master, json=body)
        assert (status, answer) == (422, expected), body
    status, _, _ = await stack.request("PUT", location, key=master, json=[1, 2])
    assert status == 400
    status, _, _ = await stack.request("GET", location, key=master)
    assert status == 204, "a refused location was stored"


async def test_alphanumeric_values(stack: Stack) -> None:
    master, base = await new_device(stack, s="alphanumeric")
    path = f"{base}/streams/s"
    longest = "é" * 5000  # characters, not bytes, count
    status, body, _ = await stack.request(
        "PUT", f"{path}/value", key=master, json={"value": longest, "timestamp": iso(BASE_MS)}
    )
    assert (status, body) == (202, ACCEPTED)
    status, body, _ = await stack.request("PUT", f"{path}/value", key=master,
                                          json={"value": "x" * 5001})  # fmt: skip
    assert (status, body) == (422, invalid(value=["not_valid"]))
    status, body, _ = await stack.request(
        "POST", f"{path}/values", key=master,
        json={"values": [{"timestamp": iso(BASE_MS + 1000), "value": "ok"},
                         {"timestamp": iso(BASE_MS + 2000), "value": "y" * 5001}]},
    )  # fmt: skip
    assert (status, body) == (422, invalid(value=["not_valid"]))
    # Numbers sent to a text stream are kept as their text.
    await post_values(
        stack, master, f"{path}/values",
        [(BASE_MS + 3000, 5), (BASE_MS + 4000, 2.5), (BASE_MS + 5000, "")],
    )  # fmt: skip
    body = await read(stack, master, f"{path}/values", dir="asc")
    assert body["values"] == [
        {"timestamp": iso(BASE_MS), "value": longest},
        {"timestamp": iso(BASE_MS + 3000), "value": "5"},
        {"timestamp": iso(BASE_MS + 4000), "value": "2.5"},
        {"timestamp": iso(BASE_MS + 5000), "value": ""},
    ]
    _, stream, _ = await stack.request("GET", path, key=master)
    assert (stream["value"], stream["latest_value_at"]) == ("", iso(BASE_MS + 5000))


async def test_malformed_requests_are_refused_with_4xx(stack: Stack) -> None:
    master, base = await new_device(stack, t="numeric")
    ts = iso(BASE_MS)
    one = [{"timestamp": ts, "value": 1}]
    cases: list[tuple[str, str, Any, int, dict[str, list[str]] | None]] = [
        ("PUT", "streams/t/value", [1], 400, None),
        ("PUT", "streams/t/value", "7", 400, None),
        ("PUT", "streams/t/value", {}, 422, {"value": ["not_present"]}),
        ("PUT", "streams/t/value", {"value": {"v": 1}}, 422, {"value": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": [1]}, 422, {"value": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": True}, 422, {"value": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": None}, 422, {"value": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": "NaN"}, 422, {"value": ["not_numeric"]}),
        ("PUT", "streams/t/value", {"value": 1, "timestamp": "yesterday"}, 422,
         {"timestamp": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": 1, "timestamp": 1704067200}, 422,
         {"timestamp": ["not_valid"]}),
        ("PUT", "streams/t/value", {"value": 1, "timestamp": "2024-02-30T00:00:00Z"}, 422,
         {"timestamp": ["not_valid"]}),
        ("POST", "streams/t/values", [one], 400, None),
        ("POST", "streams/t/values", {}, 422, {"values": ["not_present"]}),
        ("POST", "streams/t/values", {"values": []}, 422, {"values": ["not_present"]}),
        ("POST", "streams/t/values", {"values": {"timestamp": ts, "value": 1}}, 422,
         {"values": ["not_valid"]}),
        ("POST", "streams/t/values", {"values": [1, 2]}, 422, {"values": ["not_valid"]}),
        ("POST", "streams/t/values", {"values": [{"value": 1}]}, 422, {"values": ["not_present"]}),
        ("POST", "streams/t/values", {"values": [{"timestamp": ts}]}, 422,
         {"values": ["not_valid"]}),
        ("POST", "streams/t/values", {"values": [{"timestamp": "x", "value": 1}]}, 422,
         {"values": ["not_valid"]}),
        ("POST", "streams/t/values", {"values": [{"timestamp": ts, "value": "abc"}]}, 422,
         {"value": ["not_numeric"]}),
        ("POST", "update", [{"values": {"t": 1}}], 400, None),
        ("POST", "update", {}, 422, {"values": ["not_present"]}),
        ("POST", "update", {"values": [1]}, 422, {"values": ["not_valid"]}),
        ("POST", "update", {"values": {"t": [1]}}, 422, {"t": ["not_valid"]}),
        ("POST", "update", {"values": {"t": 1}, "timestamp": "1/1/2024"}, 422,
         {"timestamp": ["not_valid"]}),
        ("POST", "update", {"values": {"t": 1}, "location": "here"}, 422,
         {"location": ["not_valid"]}),
        ("POST", "updates", {"values": {"t": one[0]}}, 422, {"t": ["not_valid"]}),
        ("POST", "updates", {"values": {"t": []}}, 422, {"t": ["not_present"]}),
        ("POST", "updates", {"values": {"t": [{"value": 1}]}}, 422, {"t": ["not_present"]}),
        # Fits the route's body type; the timestamp sends it on to the path that names errors.
        ("POST", "updates", {"values": {"t": [{"timestamp": "1/1/2024", "value": 1}]}}, 422,
         {"t": ["not_valid"]}),
        ("POST", "updates", {"values": "t=1"}, 422, {"values": ["not_valid"]}),
        ("GET", "streams/t/values?start=2024-13-01", None, 422, {"start": ["not_valid"]}),
        ("GET", "streams/t/values?limit=0", None, 422, {"limit": ["not_valid"]}),
        ("GET", "streams/t/values?limit=ten", None, 422, {"limit": ["not_valid"]}),
        ("GET", "streams/t/values?sort=size", None, 422, {"sort": ["not_valid"]}),
        ("GET", "streams/t/values?dir=up", None, 422, {"dir": ["not_valid"]}),
        ("GET", "streams/t/values?min=low", None, 422, {"min": ["not_numeric"]}),
        ("GET", "values?end=tomorrow", None, 422, {"end": ["not_valid"]}),
        ("GET", "location/waypoints?limit=-3", None, 422, {"limit": ["not_valid"]}),
        ("DELETE", "location/waypoints", {"from": ts}, 422, {"end": ["not_present"]}),
    ]  # fmt: skip
    wrong = []
    for method, suffix, body, want_status, want_errors in cases:
        status, answer, _ = await stack.request(method, f"{base}/{suffix}", key=master, json=body)
        want = invalid(**want_errors) if want_errors is not None else None
        if status != want_status or (want is not None and answer != want):
            wrong.append(f"{method} {suffix} {body!r}: {status} {answer}")
        elif want is None:
            assert answer["message"] == "Bad Request", (method, suffix, body)
    assert not wrong, "\n".join(wrong)

    for data, content_type, want_status in [
        (b'{"value": 1', "application/json", 400),
        (b'{"value": 1e999}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"\xc1", "application/x-msgpack", 400),
        (b"value=1", "text/plain", 415),
    ]:
        status, _, _ = await stack.request(
            "PUT", f"{base}/streams/t/value", key=master, data=data,
            headers={"Content-Type": content_type},
        )  # fmt: skip
        assert status == want_status, data
    # MessagePack bodies are as good as JSON ones.
    status, _, _ = await stack.request(
        "PUT", f"{base}/streams/t/value", key=master,
        data=msgpack.packb({"value": 9, "timestamp": ts}),
        headers={"Content-Type": "application/x-msgpack"},
    )  # fmt: skip
    assert status == 202
    body = await read(stack, master, f"{base}/streams/t/values")
    assert body["values"] == [{"timestamp": ts, "value": 9.0}], "a refused request wrote a value"


async def test_out_of_range_parameters_are_never_a_server_error(stack: Stack) -> None:
    """Client mistakes the adapter passes on unchecked must still come back as 4xx."""
    master, base = await new_device(stack, t="numeric", s="alphanumeric")
    await post_values(stack, master, f"{base}/streams/t/values", [(BASE_MS, 1)])
    await post_values(stack, master, f"{base}/streams/s/values", [(BASE_MS, "on")])
    huge = "9" * 25
    cases: list[tuple[str, str, Any]] = [
        ("GET", f"streams/t/values?limit={huge}", None),
        ("GET", f"streams/t/sampling?type=avg&interval={huge}", None),
        ("GET", f"streams/t/sampling?type=avg&interval=10&limit={huge}", None),
        ("GET", f"values?limit={huge}", None),
        ("GET", f"location/waypoints?limit={huge}", None),
        ("GET", "streams/s/values?min=1", None),  # a range of numbers on a text stream
        ("POST", "values/search", {"conditions": {"s": {"gt": 1}}}),  # number op on text
        ("POST", "values/search", {"conditions": {"t": {"match": "on"}}}),  # text op on number
    ]
    server_errors = []
    for method, suffix, body in cases:
        status, answer, _ = await stack.request(method, f"{base}/{suffix}", key=master, json=body)
        if status >= 500:
            server_errors.append(f"{method} {suffix} {body or ''} -> {status} {answer['message']}")
        else:
            assert 400 <= status < 500 or status == 200, (method, suffix, status)
    assert not server_errors, "\n".join(server_errors)


async def test_the_storage_process_never_loads_pandas(stack: Stack) -> None:
    """Loading pandas (which chdb installs, and pyarrow and clickhouse-connect reach for at
    their first conversion) stalled the first flush of values for up to a second; the
    services declare it absent (m2x/runtime/clickhouse.py). Last in this module, after its
    writes, reads, samplings and stats; then this test's own."""
    master, base = await new_device(stack, t="numeric", s="alphanumeric")
    await post_values(stack, master, f"{base}/streams/t/values", [(BASE_MS + i, i) for i in range(50)])  # fmt: skip
    await post_values(stack, master, f"{base}/streams/s/values", [(BASE_MS, "on")])
    for suffix in ("streams/t/values", "streams/t/stats", "streams/t/sampling?type=avg&interval=60",
                   "streams/s/values", "values.msgpack"):  # fmt: skip
        status, _, _ = await stack.request("GET", f"{base}/{suffix}", key=master)
        assert status == 200, suffix
    maps = await asyncio.to_thread(Path(f"/proc/{stack.storage.process.pid}/maps").read_text)
    assert "/pandas/" not in maps
