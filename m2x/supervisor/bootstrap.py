"""The stack's default account, kept in DATA_DIR/bootstrap.json across restarts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc

from m2x.keys.v1 import keys_pb2, keys_pb2_grpc
from m2x.runtime.grpc_client import open_channel
from m2x.supervisor.rundir import write_private_json

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "default"
# Long enough to ride out a restart of the keys service while we bootstrap.
_RPC_TIMEOUT = 30.0


class BootstrapError(Exception):
    """bootstrap.json cannot be used; the message says what to do."""


def bootstrap_path(data_dir: Path) -> Path:
    return data_dir / "bootstrap.json"


def _stored_account_id(path: Path) -> str:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        raise BootstrapError(f"cannot read {path}: {exc}; fix or remove it") from None
    account_id = document.get("account_id") if isinstance(document, dict) else None
    if not isinstance(account_id, str) or not account_id:
        raise BootstrapError(f"{path} has no account_id; fix or remove it")
    return account_id


async def ensure_account(keys_address: str, path: Path) -> keys_pb2.Account:
    """The account named in `path`, or a new one when there is none yet."""
    account_id = _stored_account_id(path)
    async with open_channel(keys_address, _RPC_TIMEOUT) as channel:
        keys = keys_pb2_grpc.KeysServiceStub(channel)
        if account_id:
            try:
                found = await keys.GetAccount(
                    keys_pb2.GetAccountRequest(account_id=account_id), wait_for_ready=True
                )
                # Read back rather than trusted from the file: the key may have been regenerated.
                return found.account
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            logger.warning("account %s of %s is gone; creating a new one", account_id, path)
        created = await keys.CreateAccount(
            keys_pb2.CreateAccountRequest(name=DEFAULT_ACCOUNT), wait_for_ready=True
        )
        logger.info("created account %s", created.account.id)
        return created.account


def write_bootstrap(path: Path, account: keys_pb2.Account, http_url: str, mqtt_url: str) -> None:
    write_private_json(
        path,
        {
            "account_id": account.id,
            "master_key": account.master_key,
            "http_url": http_url,
            "mqtt_url": mqtt_url,
        },
    )
