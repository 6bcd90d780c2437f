"""The bulk conversion of value entries against the per-value path it stands in for."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from adapters.api.fields import FieldReader
from adapters.api.value_columns import (
    MAX_VALUES,
    Columns,
    UpdatesBody,
    ValuesBody,
    bulk_columns,
    entries,
    number_columns,
)
from adapters.api.values_routes import _streams
from adapters.http.codec import decode_body
from m2x.storage.v1 import storage_pb2 as pb

BASE_MS = 1_600_000_000_000


def per_value(values: dict[Any, Any]) -> tuple[pb.ValueColumns, dict[str, list[str]]]:
    """What the routes do with bodies that have errors: every entry on its own."""
    fields = FieldReader({})
    columns = Columns()
    for name, raw in values.items():
        columns.add(str(name), entries(fields, raw, str(name), None), fields, str(name))
    return columns.message(), fields.errors


def stamp(rng: random.Random, ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = f"2020-09-13T12:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    form = rng.randrange(4)
    if form == 0:
        return text + f".{millis:03d}Z"
    if form == 1:
        return text + f".{millis:03d}{rng.randrange(1000):03d}Z"
    if form == 2:
        return text + "Z"
    return text + f".{millis:03d}+00:00"


def entry(rng: random.Random, ms: int, kind: str, broken: float) -> Any:
    value: Any = {"number": rng.random() * 100, "integer": rng.randrange(-5, 5), "text": "on"}[kind]
    if rng.random() >= broken:
        return {"timestamp": stamp(rng, ms), "value": value}
    return rng.choice([
        {"value": value}, {"timestamp": stamp(rng, ms)}, {"timestamp": None, "value": value},
        {"timestamp": "noon", "value": value}, {"timestamp": ms, "value": value},
        {"timestamp": stamp(rng, ms), "value": True}, {"timestamp": stamp(rng, ms), "value": None},
        {"timestamp": stamp(rng, ms), "value": [1]}, {"timestamp": stamp(rng, ms), "value": {}},
        {"timestamp": stamp(rng, ms), "value": "12.5"}, {"timestamp": stamp(rng, ms), "value": 7},
        {"timestamp": "2020-02-30T00:00:00Z", "value": value}, [stamp(rng, ms), value], "x", 3,
    ])  # fmt: skip


def body(rng: random.Random, broken: float) -> dict[Any, Any]:
    values: dict[Any, Any] = {}
    for s in range(rng.randrange(1, 6)):
        kind = rng.choice(["number", "number", "integer", "text"])
        count = rng.choice([1, 2, 15, 16, 100, 150])
        raw: Any = [entry(rng, BASE_MS + i * 250, kind, broken) for i in range(count)]
        if rng.random() < broken:
            raw = rng.choice([[], {}, "x", None, raw[0]])
        values[f"s{s}"] = raw
    return values


@pytest.mark.parametrize("seed", range(30))
def test_bulk_conversion_matches_the_per_value_path(seed: int) -> None:
    rng = random.Random(seed)
    for broken in (0.0, 0.0, 0.001, 0.05, 0.5):
        values = body(rng, broken)
        expected, errors = per_value(values)
        bulk = bulk_columns(values.items())
        if bulk is not None:
            assert not errors, values
            assert bulk == expected
        fields = FieldReader({})  # what the route gets, either way
        streams = _streams(fields, values)
        assert fields.errors == errors
        if not errors:  # with errors, nothing is sent
            assert streams == expected


def test_well_formed_bodies_take_the_bulk_path() -> None:
    rng = random.Random(5)
    for _ in range(20):
        values = body(rng, 0.0)
        assert bulk_columns(values.items()) == per_value(values)[0]


def test_too_many_entries_are_refused_as_before() -> None:
    raw = [{"timestamp": "2020-01-01T00:00:00Z", "value": 1.0}] * (MAX_VALUES + 1)
    assert bulk_columns([("s", raw)]) is None
    fields = FieldReader({})
    _streams(fields, {"s": raw})
    assert fields.errors == {"s": ["not_valid"]}


def test_mixed_texts_and_numbers_are_texts_as_before() -> None:
    raw = [{"timestamp": "2020-01-01T00:00:00Z", "value": v} for v in ["on", 1, 2.5] * 10]
    fields = FieldReader({})
    columns = _streams(fields, {"s": raw})
    assert not fields.errors
    assert (list(columns.texts), list(columns.counts)) == ([True], [30])
    assert list(columns.text_values) == ["on", "1", "2.5"] * 10


def test_each_error_code_is_given_once_per_field() -> None:
    fields = FieldReader({})
    entries = [{"timestamp": "never", "value": 1.0}, {"timestamp": "later", "value": 2.0}]
    _streams(fields, {"t": entries, "u": [{"value": 1.0}, {"value": 2.0}]})
    assert fields.errors == {"t": ["not_valid"], "u": ["not_present"]}


def has_text(values: dict[Any, Any]) -> bool:
    """Whether a well-formed entry of `values` has a text value (route types take numbers)."""
    return any(
        isinstance(e, dict) and isinstance(e.get("value"), str)
        for raw in values.values() if isinstance(raw, list) for e in raw
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(10))
def test_bodies_decoded_by_the_route_type_convert_as_plain_ones(seed: int) -> None:
    rng = random.Random(seed)
    for broken in (0.0, 0.0, 0.001, 0.05, 0.5):
        values = body(rng, broken)
        raw = orjson.dumps({"values": values, "location": {"latitude": 1, "longitude": 2}})
        decoded = decode_body(raw, "application/json", None, UpdatesBody)
        plain = bulk_columns(values.items())
        assert isinstance(decoded, UpdatesBody) or broken > 0 or has_text(values)
        if isinstance(decoded, UpdatesBody):
            assert decoded.location == {"latitude": 1, "longitude": 2}
            assert number_columns(decoded.values.items()) == plain
        else:  # not of the type (a text, a bool, a null, a missing field...): plain values
            assert decoded == orjson.loads(raw)
            assert plain is None or has_text(values)


@pytest.mark.parametrize("seed", range(10))
def test_stream_values_bodies_decoded_by_the_route_type_convert_as_plain_ones(seed: int) -> None:
    rng = random.Random(seed)
    for broken in (0.0, 0.0, 0.001, 0.05, 0.5):
        for name, entries_ in body(rng, broken).items():
            raw = orjson.dumps({"values": entries_})
            decoded = decode_body(raw, "application/json", None, ValuesBody)
            plain = bulk_columns([(name, entries_)])
            if isinstance(decoded, ValuesBody):
                assert number_columns([(name, decoded.values)]) == plain
            else:
                assert decoded == orjson.loads(raw)
                assert plain is None or has_text({name: entries_})
