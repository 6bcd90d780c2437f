"""The stack starts and answers the unauthenticated routes."""

from __future__ import annotations

from tests.support.stack import Stack


async def test_status_reports_api_and_keys(stack: Stack) -> None:
    status, body, headers = await stack.request("GET", "/v2/status")
    assert status == 200
    assert body == {"api": "OK", "keys": "OK", "storage": "OK", "triggers": "OK"}
    assert headers["Content-Type"].startswith("application/json")


async def test_master_key_lists_itself(stack: Stack) -> None:
    _, master = await stack.new_account()
    status, body, _ = await stack.request("GET", "/v2/keys", key=master)
    assert status == 200
    assert [k["key"] for k in body["keys"]] == [master]
    assert body["keys"][0]["master"] is True
