"""Trigger evaluation end to end: values posted through the HTTP API, notifications received
by a real webhook server. Each scenario ends with a value that notifies, and deliveries to one
host go one at a time in order, so once the last expected notification arrived nothing else
can be under way (no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.stack import Stack
from tests.support.triggers import iso, new_device, trigger_stack
from tests.support.webhooks import receiver


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack for the module; every test works on its own fresh account and device."""
    async with trigger_stack(tmp_path_factory.mktemp("triggers")) as running:
        yield running


def by_trigger(events: list[Any]) -> dict[str, list[tuple[str, Any]]]:
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for r in events:
        values = {s: v["value"] for s, v in r.body["values"].items()}
        grouped.setdefault(r.body["trigger"], []).append((r.body["event"], values))
    return grouped


async def test_every_operator(stack: Stack) -> None:
    d = await new_device(stack, "n", ("s", "alphanumeric"), "end")
    async with receiver() as hook:
        ops: dict[str, tuple[str, dict[str, Any]]] = {
            "gt": ("n", {"gt": 10}), "gte": ("n", {"gte": 10}), "lt": ("n", {"lt": 10}),
            "lte": ("n", {"lte": 10}), "eq": ("n", {"eq": 10}), "not": ("n", {"not": 10}),
            "changed": ("n", {"changed": True}), "unchanged": ("n", {"changed": False}),
            "range": ("n", {"gte": 10, "lte": 10.5}),
            "s-eq": ("s", {"eq": "on"}), "s-not": ("s", {"not": "on"}),
            "s-changed": ("s", {"changed": True}),
        }  # fmt: skip
        for name, (stream, condition) in ops.items():
            await d.trigger(hook.url, name=name, conditions={stream: condition})
        await d.trigger(hook.url, name="end", conditions={"end": {"gt": 0}})
        await d.values("n", (1, 9), (2, 10), (3, 11), (4, 11))
        await d.values("s", (5, "on"), (6, "off"), (7, "off"))
        await d.values("end", (8, 1))
        expected = {
            "gt": [11, 11], "gte": [10, 11, 11], "lt": [9], "lte": [9, 10], "eq": [10],
            "not": [9, 11, 11], "changed": [9, 10, 11], "unchanged": [11], "range": [10],
            "s-eq": ["on"], "s-not": ["off", "off"], "s-changed": ["on", "off"], "end": [1],
        }  # fmt: skip
        received = await hook.wait_for(sum(len(v) for v in expected.values()))
        assert received[-1].body["trigger"] == "end"
        got = by_trigger(received)
        for name, values in expected.items():
            stream = ops[name][0] if name in ops else "end"
            assert got[name] == [("fired", {stream: v}) for v in values], name


async def test_reset_threshold_and_notify_on_reset(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "level")
    async with receiver() as hook:
        hot = await d.trigger(hook.url, name="hot", frequency="single", notify_on_reset=True,
                              conditions={"temperature": {"gt": 30, "reset": 28}})  # fmt: skip
        await d.trigger(hook.url, name="low", frequency="single",
                        conditions={"level": {"lt": 10}})  # fmt: skip
        await d.values("temperature", *enumerate([31, 32, 29, 31, 28, 31]))
        await d.values("level", *enumerate([9, 8, 10, 5], start=10))
        received = await hook.wait_for(5)
        got = by_trigger(received)
        assert got["hot"] == [("fired", {"temperature": 31}), ("reset", {"temperature": 28}),
                              ("fired", {"temperature": 31})]  # fmt: skip
        # Without `reset` a value outside the condition re-arms; no reset notification.
        assert got["low"] == [("fired", {"level": 9}), ("fired", {"level": 5})]
        assert received[-1].body["values"] == {"level": {"value": 5, "timestamp": iso(13),
                                                         "unit": None}}  # fmt: skip
        _, view = await d.call("GET", f"/triggers/{hot['id']}")
        assert view["activated"] is True
        await d.values("temperature", (20, 20))
        await d.trigger(hook.url, name="end", conditions={"temperature": {"lt": 0}})
        await d.values("temperature", (21, -1))
        await hook.wait_for(7)  # the reset of "hot" (20), then "end"
        _, view = await d.call("GET", f"/triggers/{hot['id']}")
        assert view["activated"] is False


async def test_periodic_frequency(stack: Stack) -> None:
    d = await new_device(stack, "p")
    async with receiver() as hook:
        await d.trigger(hook.url, frequency="periodic", interval=10, conditions={"p": {"gt": 0}})
        await d.values("p", (0, 1), (5, 2), (10, 3), (11, -1), (12, 4), (13, 5), (22, 6))
        received = await hook.wait_for(4)
        assert [r.body["values"]["p"]["value"] for r in received] == [1, 3, 4, 6]


async def test_multi_stream_timeframe(stack: Stack) -> None:
    d = await new_device(stack, "temperature", "humidity", "a", "b")
    async with receiver() as hook:
        await d.trigger(
            hook.url, name="muggy", frequency="single", timeframe=60, notify_on_reset=True,
            conditions={"temperature": {"gt": 30}, "humidity": {"gte": 80}},
        )  # fmt: skip
        await d.trigger(hook.url, name="both", timeframe=0,
                        conditions={"a": {"gt": 0}, "b": {"gt": 0}})  # fmt: skip
        await d.values("temperature", (0, 31))
        await d.values("humidity", (30, 85))  # both hold within 30 s: fired
        await d.values("temperature", (40, 32))  # still fired (single)
        await d.values("humidity", (200, 70))  # humidity out: reset
        await d.values("humidity", (210, 90))  # temperature 32 is 170 s older: no
        await d.values("temperature", (220, 33))  # within 10 s: fired
        await d.update(300, a=1, b=1)  # same timestamp: timeframe 0 holds
        await d.values("a", (301, 1))  # b is 1 s older than a: not within 0 s
        await d.update(302, a=2, b=2)
        received = await hook.wait_for(5)
        got = by_trigger(received)
        assert got["muggy"] == [
            ("fired", {"temperature": 31, "humidity": 85}),
            ("reset", {"temperature": 32, "humidity": 70}),
            ("fired", {"temperature": 33, "humidity": 90}),
        ]
        assert got["both"] == [("fired", {"a": 1, "b": 1}), ("fired", {"a": 2, "b": 2})]
        first = received[0].body
        assert first["timeframe"] == 60
        assert first["values"]["humidity"]["timestamp"] == iso(30)
        assert first["timestamp"] == iso(30)


async def test_disabled_triggers_do_not_evaluate(stack: Stack) -> None:
    d = await new_device(stack, "x")
    async with receiver() as hook:
        t = await d.trigger(hook.url, status="disabled", conditions={"x": {"gt": 0}})
        assert t["status"] == "disabled"
        await d.values("x", (0, 1), (1, 2))
        status, _ = await d.call("PUT", f"/triggers/{t['id']}", {"status": "enabled"})
        assert status == 204
        await d.values("x", (2, 3))
        received = await hook.wait_for(1)
        assert [r.body["values"]["x"]["value"] for r in received] == [3]


async def test_payload_is_the_seeds(stack: Stack) -> None:
    d = await new_device(stack)
    await d.stream("temperature", symbol="ºC")
    status, _ = await d.call("PUT", "/location", {
        "name": "Machines room", "latitude": 40.77177, "longitude": -73.97352, "elevation": 0,
        "timestamp": iso(-1),
    })  # fmt: skip
    assert status == 202
    async with receiver() as hook:
        await d.trigger(hook.url, name="High Temperature", custom_data="ABC",
                        conditions={"temperature": {"gt": 30, "reset": 28}})  # fmt: skip
        await d.trigger(hook.url, name="quiet", send_location=False,
                        conditions={"temperature": {"gt": 30}})  # fmt: skip
        await d.values("temperature", (0, 35))
        received = await hook.wait_for(2)
        loud = next(r for r in received if r.body["trigger"] == "High Temperature")
        assert loud.headers["Content-Type"] == "application/json"
        assert loud.body == {
            "event": "fired",
            "device": {"id": d.id, "name": "Test Device", "serial": "ABC123"},
            "trigger": "High Temperature",
            "conditions": {"temperature": {"gt": 30, "reset": 28}},
            "values": {"temperature": {"value": 35, "timestamp": iso(0), "unit": "ºC"}},
            "timeframe": 0,
            "custom_data": "ABC",
            "timestamp": iso(0),
            "location": {"name": "Machines room", "latitude": 40.77177,
                         "longitude": -73.97352, "elevation": 0, "timestamp": iso(-1)},
        }  # fmt: skip
        assert list(loud.body) == ["event", "device", "trigger", "conditions", "values",
                                   "timeframe", "custom_data", "timestamp", "location"]  # fmt: skip
        quiet = next(r for r in received if r.body["trigger"] == "quiet")
        assert "location" not in quiet.body and quiet.body["custom_data"] is None


async def test_values_before_a_trigger_existed_are_not_its_business(stack: Stack) -> None:
    d = await new_device(stack, "x")
    await d.values("x", (0, 5))
    async with receiver() as hook:
        await d.trigger(hook.url, conditions={"x": {"gt": 0}})
        await d.values("x", (1, 6))
        received = await hook.wait_for(1)
        assert received[0].body["values"]["x"]["value"] == 6
