"""Values export (spec §8.5) as an asynchronous job (spec §15) with a downloadable CSV."""

from __future__ import annotations

import csv
import io

import aiohttp

from tests.support.stack import Stack
from tests.support.waiting import eventually


async def exported(stack: Stack, key: str, base: str, **params: str) -> list[list[str]]:
    """The CSV rows of an export of the device at `base`, once its job completed."""
    status, _, headers = await stack.request(
        "GET", f"{base}/values/export.csv", key=key, params=params
    )
    assert status == 202
    job_path = headers["Location"].removeprefix(stack.url)

    async def job() -> dict:
        return (await stack.request("GET", job_path, key=key))[1]

    done = await eventually(job, lambda j: j["state"] in ("complete", "failed"))
    assert done["state"] == "complete", done
    async with aiohttp.ClientSession() as session, session.get(done["result"]["url"]) as response:
        return list(csv.reader(io.StringIO(await response.text())))


async def test_export_holds_the_last_value_written_at_a_timestamp(stack: Stack) -> None:
    _, master = await stack.new_account()
    _, device, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "r", "visibility": "private"}
    )
    base = f"/v2/devices/{device['id']}"
    for name in ("a", "b"):
        await stack.request("PUT", f"{base}/streams/{name}", key=master, json={})
    stamps = [f"2024-01-01T00:00:0{i}.000Z" for i in range(4)]
    await stack.request("POST", f"{base}/updates", key=master, json={"values": {
        "a": [{"timestamp": t, "value": i} for i, t in enumerate(stamps)],
        "b": [{"timestamp": t, "value": 10 + i} for i, t in enumerate(stamps)],
    }})  # fmt: skip
    plain = await exported(stack, master, base, streams="a")
    assert plain == [["timestamp", "stream", "value"]] + [
        [t, "a", str(i)] for i, t in reversed(list(enumerate(stamps)))
    ]
    # Stream "a" gets new values at two of its timestamps: each is exported once, as last written.
    for t, value in ((stamps[1], 100), (stamps[3], 300)):
        status, _, _ = await stack.request(
            "PUT", f"{base}/streams/a/value", key=master, json={"timestamp": t, "value": value}
        )
        assert status == 202
    final = {"a": ["0", "100", "2", "300"], "b": ["10", "11", "12", "13"]}
    expected = [["timestamp", "stream", "value"]] + [
        [t, name, final[name][i]] for i, t in reversed(list(enumerate(stamps))) for name in "ab"
    ]
    header, rows = expected[0], expected[1:]
    assert await exported(stack, master, base) == expected
    assert await exported(stack, master, base, streams="a") == [
        header,
        *(row for row in rows if row[1] == "a"),
    ]
    assert await exported(stack, master, base, streams="b", limit="2") == [
        header,
        *[row for row in rows if row[1] == "b"][:2],
    ]


async def test_export_job_runs_and_serves_the_csv(stack: Stack) -> None:
    _, master = await stack.new_account()
    _, device, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "e", "visibility": "private"}
    )
    base = f"/v2/devices/{device['id']}"
    for name, kind in (("t", "numeric"), ("s", "alphanumeric")):
        await stack.request("PUT", f"{base}/streams/{name}", key=master, json={"type": kind})
    await stack.request("POST", f"{base}/updates", key=device["key"], json={"values": {
        "t": [{"timestamp": "2024-01-01T00:00:00Z", "value": 1.5}, {"timestamp": "2024-01-01T00:00:01Z", "value": 2}],
        "s": [{"timestamp": "2024-01-01T00:00:01Z", "value": "on, off\n\"later\""}],
    }})  # fmt: skip

    status, body, headers = await stack.request(
        "GET", f"{base}/values/export.csv", key=device["key"]
    )
    assert (status, body) == (202, {"status": "accepted"})
    job_url = headers["Location"]
    assert job_url.startswith(stack.url + "/v2/jobs/") and len(job_url.rsplit("/", 1)[1]) == 38

    async def job() -> dict:
        status, body, _ = await stack.request(
            "GET", job_url.removeprefix(stack.url), key=device["key"]
        )
        assert status == 200
        return body

    done = await eventually(job, lambda j: j["state"] in ("complete", "failed"))
    assert done["state"] == "complete", done
    assert done["output"] == {"rows": 3} and done["finished"] and done["created"]

    # The result URL needs no key: its random token is the capability.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(done["result"]["url"]) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows == [
        ["timestamp", "stream", "value"],
        ["2024-01-01T00:00:01.000Z", "s", 'on, off\n"later"'],
        ["2024-01-01T00:00:01.000Z", "t", "2"],
        ["2024-01-01T00:00:00.000Z", "t", "1.5"],
    ]
    status, listing, _ = await stack.request("GET", "/v2/jobs", key=master)
    assert (
        status == 200
        and [j["id"] for j in listing["jobs"]] == [done["id"]]
        and listing["total"] == 1
    )
    # Other accounts see neither the job nor the device.
    _, other = await stack.new_account("other")
    assert (await stack.request("GET", job_url.removeprefix(stack.url), key=other))[0] == 404
    assert (await stack.request("GET", f"{base}/values/export.csv", key=other))[0] == 404
    status, _, _ = await stack.request("GET", "/v2/exports/" + "0" * 32 + ".csv")
    assert status == 404


async def test_export_with_locations_gives_each_value_the_location_of_its_time(
    stack: Stack,
) -> None:
    _, master = await stack.new_account()
    _, device, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "l", "visibility": "private"}
    )
    base = f"/v2/devices/{device['id']}"
    await stack.request("PUT", f"{base}/streams/a", key=master, json={})
    stamps = [f"2024-01-01T00:00:0{i}.000Z" for i in range(4)]
    await stack.request("POST", f"{base}/streams/a/values", key=master, json={
        "values": [{"timestamp": t, "value": i} for i, t in enumerate(stamps)]
    })  # fmt: skip
    for body in (
        {"latitude": 1.5, "longitude": -2, "timestamp": "2024-01-01T00:00:00.500Z"},
        {"latitude": 3, "longitude": 4, "elevation": 12.5, "timestamp": stamps[2]},
    ):
        status, _, _ = await stack.request("PUT", f"{base}/location", key=master, json=body)
        assert status == 202
    assert await exported(stack, master, base, include_location="true") == [
        ["timestamp", "stream", "value", "latitude", "longitude", "elevation"],
        [stamps[3], "a", "3", "3", "4", "12.5"],
        [stamps[2], "a", "2", "3", "4", "12.5"],  # a waypoint at the same instant counts
        [stamps[1], "a", "1", "1.5", "-2", ""],
        [stamps[0], "a", "0", "", "", ""],  # before the first known location
    ]
    assert (await exported(stack, master, base))[0] == ["timestamp", "stream", "value"]
