"""`m2x accounts create`: a new account on the stack `m2x up` runs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc

from m2x.keys.v1 import keys_pb2, keys_pb2_grpc
from m2x.runtime.grpc_client import open_channel
from m2x.supervisor.rundir import StackNotRunning, read_endpoints


async def _create(address: str, name: str) -> keys_pb2.Account:
    async with open_channel(address, default_timeout=10.0) as channel:
        created = await keys_pb2_grpc.KeysServiceStub(channel).CreateAccount(
            keys_pb2.CreateAccountRequest(name=name), wait_for_ready=True
        )
        return created.account


def run_create(data_dir: Path, name: str) -> int:
    try:
        endpoints = read_endpoints(data_dir)
        address = endpoints["components"]["keys"]["address"]
    except StackNotRunning as exc:
        print(f"m2x accounts: {exc}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError) as exc:
        print(f"m2x accounts: unreadable endpoints of {data_dir}: {exc!r}", file=sys.stderr)
        return 1
    try:
        account = asyncio.run(_create(address, name))
    except grpc.aio.AioRpcError as exc:
        print(f"m2x accounts: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(json.dumps({"account_id": account.id, "master_key": account.master_key}))
    return 0
