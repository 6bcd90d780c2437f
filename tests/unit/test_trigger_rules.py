"""Trigger rules without I/O: request validation, evaluation, fake values, callback networks."""

from __future__ import annotations

from typing import Any

import pytest

from m2x.runtime.errors import ValidationFailed
from services.triggers.callbacks import NetworkPolicy
from services.triggers.evaluator import evaluate
from services.triggers.model import Owner, Spec, State, Trigger
from services.triggers.spec import read_spec
from services.triggers.storage_client import StreamInfo
from services.triggers.tester import fake_value

STREAMS = {"temperature": "numeric", "humidity": "numeric", "door": "alphanumeric"}
BASE = {
    "name": "hot",
    "conditions": {"temperature": {"gt": 30, "reset": 28}},
    "frequency": "single",
    "callback_url": "http://example.com",
}


def errors(body: dict[str, Any], current: Spec | None = None) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as failed:
        read_spec(body, STREAMS, current)
    return failed.value.fields


def test_defaults_and_normalised_url() -> None:
    spec = read_spec(BASE, STREAMS)
    assert spec.callback_url == "http://example.com/"
    assert (spec.status, spec.send_location, spec.notify_on_reset) == ("enabled", True, False)
    assert (spec.timeframe, spec.interval, spec.custom_data) == (0, 0, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": None}, {"name": ["not_present"]}),
        ({"name": ""}, {"name": ["not_present"]}),
        ({"conditions": None}, {"conditions": ["not_present"]}),
        ({"conditions": {}}, {"conditions": ["not_present"]}),
        ({"conditions": {"nope": {"gt": 1}}}, {"conditions": ["not_valid"]}),
        ({"conditions": {"temperature": {"between": 1}}}, {"conditions": ["not_valid"]}),
        ({"conditions": {"temperature": {"gt": "warm"}}}, {"conditions": ["not_valid"]}),
        ({"conditions": {"door": {"gt": 1}}}, {"conditions": ["not_valid"]}),
        ({"conditions": {"temperature": {"eq": 1, "reset": 0}}}, {"conditions": ["not_valid"]}),
        ({"conditions": {"temperature": {"gte": 1, "lte": 5, "reset": 0}}},
         {"conditions": ["not_valid"]}),
        ({"conditions": {"temperature": {"changed": "yes"}}}, {"conditions": ["not_valid"]}),
        ({"timeframe": "soon"}, {"timeframe": ["not_numeric"]}),
        ({"timeframe": 300}, {"timeframe": ["not_valid"]}),  # single-stream
        ({"callback_url": None}, {"callback_url": ["not_present"]}),
        ({"callback_url": "ftp://example.com"}, {"callback_url": ["not_valid"]}),
        ({"callback_url": "not a url"}, {"callback_url": ["not_valid"]}),
        ({"status": "paused"}, {"status": ["not_valid"]}),
        ({"frequency": "hourly"}, {"frequency": ["not_valid"]}),
        ({"frequency": None}, {"frequency": ["not_present"]}),
        ({"frequency": "periodic"}, {"interval": ["not_present"]}),
        ({"frequency": "periodic", "interval": "often"}, {"interval": ["not_numeric"]}),
        ({"frequency": "periodic", "interval": 0}, {"interval": ["not_valid"]}),
        ({"frequency": "periodic", "interval": 86_401}, {"interval": ["not_valid"]}),
        ({"custom_data": "x" * 5001}, {"custom_data": ["not_valid"]}),
        ({"send_location": "maybe"}, {"send_location": ["not_valid"]}),
    ],
)  # fmt: skip
def test_validation_codes(change: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert errors({**BASE, **change}) == expected


def test_multi_stream_timeframe_bounds() -> None:
    body = {**BASE, "conditions": {"temperature": {"gt": 30}, "humidity": {"gte": 80}}}
    assert read_spec({**body, "timeframe": 86_400}, STREAMS).timeframe == 86_400
    assert errors({**body, "timeframe": 86_401}) == {"timeframe": ["not_valid"]}
    assert errors({**body, "timeframe": -1}) == {"timeframe": ["not_valid"]}


def test_update_keeps_what_it_does_not_name() -> None:
    current = read_spec({**BASE, "frequency": "periodic", "interval": 60}, STREAMS)
    updated = read_spec({"status": "disabled"}, None, current)
    assert (updated.name, updated.interval, updated.status) == ("hot", 60, "disabled")
    assert errors({"name": ""}, current) == {"name": ["not_present"]}
    single = read_spec({**BASE}, STREAMS)
    assert errors({"frequency": "periodic"}, single) == {"interval": ["not_present"]}


def _trigger(conditions: dict[str, Any], **fields: Any) -> Trigger:
    spec = read_spec({**BASE, "conditions": conditions, **fields}, STREAMS)
    return Trigger("1", Owner("a", "d"), spec, 0, 0, 0, 7)


def _run(trigger: Trigger, *values: tuple[str, Any, int]) -> list[str | None]:
    state = State(trigger.revision)
    return [evaluate(trigger, state, s, v, ts) for s, v, ts in values]


def test_reset_threshold_rearms_only_when_reached() -> None:
    t = _trigger({"temperature": {"gt": 30, "reset": 28}})
    seq = [("temperature", v, i * 1000) for i, v in enumerate([31, 32, 29, 31, 28, 31])]
    assert _run(t, *seq) == ["fired", None, None, None, "reset", "fired"]


def test_without_reset_a_value_outside_the_condition_rearms() -> None:
    t = _trigger({"temperature": {"lte": 10}})
    seq = [("temperature", v, i) for i, v in enumerate([10, 9, 11, 5])]
    assert _run(t, *seq) == ["fired", None, "reset", "fired"]


def test_periodic_uses_value_timestamps() -> None:
    t = _trigger({"temperature": {"gt": 0}}, frequency="periodic", interval=10)
    seq = [("temperature", v, s * 1000) for s, v in [(0, 1), (5, 1), (10, 1), (11, -1), (12, 1)]]
    assert _run(t, *seq) == ["fired", None, "fired", "reset", "fired"]


def test_multi_stream_within_timeframe() -> None:
    t = _trigger({"temperature": {"gt": 30}, "humidity": {"gte": 80}}, timeframe=60)
    seq = [("temperature", 31, 0), ("humidity", 85, 30_000), ("temperature", 32, 40_000),
           ("humidity", 70, 200_000), ("humidity", 90, 210_000), ("temperature", 33, 220_000)]  # fmt: skip
    assert _run(t, *seq) == [None, "fired", None, "reset", None, "fired"]


def test_changed_and_text_operators() -> None:
    t = _trigger({"door": {"changed": True}}, frequency="continuous")
    assert _run(t, ("door", "open", 1), ("door", "open", 2), ("door", "shut", 3)) == [
        "fired", "reset", "fired",
    ]  # fmt: skip
    t = _trigger({"door": {"not": "open"}}, frequency="continuous")
    assert _run(t, ("door", "open", 1), ("door", "shut", 2)) == [None, "fired"]


@pytest.mark.parametrize(
    "ops",
    [{"gt": 30}, {"gte": 30}, {"lt": 5}, {"lte": 5}, {"eq": 7}, {"not": 7},
     {"gte": 80, "lte": 90}, {"gt": 1, "lt": 2}, {"changed": True}, {"changed": False}],
)  # fmt: skip
def test_fake_values_meet_their_condition(ops: dict[str, Any]) -> None:
    t = _trigger({"temperature": ops}, frequency="continuous")
    condition = t.conditions[0]
    info = StreamInfo("numeric", None, 12.0)
    value = fake_value(condition, info)
    state = State(t.revision, previous={"temperature": 12.0})
    assert evaluate(t, state, "temperature", value, 1) == "fired"


def test_network_policy_most_specific_wins() -> None:
    default = NetworkPolicy()
    assert default.allows("127.0.0.1") and default.allows("10.1.2.3")
    assert not default.allows("169.254.169.254")
    assert not default.allows("::ffff:169.254.169.254")
    assert not default.allows("fe80::1")
    strict = NetworkPolicy(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
    assert strict.allows("10.1.1.1") and not strict.allows("10.9.1.1")
    assert not strict.allows("192.168.1.1")
