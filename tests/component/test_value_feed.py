"""WatchValues: stored values replayed after a cursor, then streamed live, in version order."""

from __future__ import annotations

import asyncio

from m2x.runtime.grpc_client import open_channel
from m2x.storage.v1 import storage_pb2 as pb
from m2x.storage.v1 import storage_pb2_grpc
from tests.support.stack import Stack


async def _device(stack: Stack) -> tuple[str, str, str]:
    account, master = await stack.new_account()
    _, device, _ = await stack.request(
        "POST", "/v2/devices", key=master, json={"name": "w", "visibility": "private"}
    )
    for name, kind in (("t", "numeric"), ("s", "alphanumeric")):
        await stack.request(
            "PUT", f"/v2/devices/{device['id']}/streams/{name}", key=master, json={"type": kind}
        )
    return account, device["id"], master


async def _write(stack: Stack, device_id: str, key: str, second: int) -> None:
    ts = f"2024-01-01T00:00:{second:02d}Z"
    status, _, _ = await stack.request(
        "POST",
        f"/v2/devices/{device_id}/update",
        key=key,
        json={"timestamp": ts, "values": {"t": second, "s": f"x{second}"}},
    )
    assert status == 202


async def test_replay_then_live_in_version_order(stack: Stack) -> None:
    account, device_id, master = await _device(stack)
    _, other_device, other_key = await _device(stack)  # another account's writes never show
    for second in (1, 2):
        await _write(stack, device_id, master, second)
    await _write(stack, other_device, other_key, 9)

    channel = open_channel(stack.storage.listen)
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    request = pb.WatchValuesRequest(devices=[pb.DeviceKey(account_id=account, device_id=device_id)])
    seen: list[pb.StoredValue] = []
    try:
        call = stub.WatchValues(request)
        # Replay: both writes of the device, each with its numeric and text value.
        while True:
            message = await asyncio.wait_for(call.read(), 10)
            seen.extend(message.values)
            if message.caught_up:
                break
        assert sorted((v.stream, v.timestamp_ms % 60_000) for v in seen) == [
            ("s", 1000),
            ("s", 2000),
            ("t", 1000),
            ("t", 2000),
        ]
        assert {v.WhichOneof("value") for v in seen if v.stream == "t"} == {"number"}
        assert [v.text for v in seen if v.stream == "s"] == ["x1", "x2"]
        # Live: a write made now arrives on the open stream.
        await _write(stack, device_id, master, 3)
        live: list[pb.StoredValue] = []
        while len(live) < 2:
            live.extend((await asyncio.wait_for(call.read(), 10)).values)
        assert sorted(v.timestamp_ms % 60_000 for v in live) == [3000, 3000]
        versions = [v.version for v in seen + live]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        call.cancel()

        # Resuming from a cursor replays exactly what came after it.
        cursor = seen[1].version
        resumed = stub.WatchValues(
            pb.WatchValuesRequest(devices=request.devices, after_version=cursor)
        )
        replayed: list[pb.StoredValue] = []
        while True:
            message = await asyncio.wait_for(resumed.read(), 10)
            replayed.extend(message.values)
            if message.caught_up:
                break
        resumed.cancel()
        assert [v.version for v in replayed] == versions[2:]
    finally:
        await channel.close()
