"""Value columns from an adapter are checked for shape before storage reads them as arrays."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from m2x.runtime.errors import ValidationFailed
from m2x.storage.v1 import storage_pb2 as pb
from services.storage.convert import incoming


def columns(**fields: object) -> pb.ValueColumns:
    good: dict[str, object] = {
        "streams": ["t", "x"], "counts": [2, 1], "texts": [False, True],
        "timestamps_ms": struct.pack("<3q", 1, 2, 3), "numbers": struct.pack("<2d", 1.5, -2.0),
        "text_values": ["on"],
    }  # fmt: skip
    return pb.ValueColumns(**{**good, **fields})  # type: ignore[arg-type]


def test_well_formed_columns_are_read_as_arrays() -> None:
    values = incoming(columns())
    assert (values.streams, values.counts, values.texts) == (["t", "x"], [2, 1], [False, True])
    assert values.stamps.tolist() == [1, 2, 3] and values.stamps.dtype == np.int64
    assert values.numbers.tolist() == [1.5, -2.0]
    assert values.text_values == ["on"]


@pytest.mark.parametrize(
    "broken",
    [
        {"counts": [2]},  # fewer counts than streams
        {"texts": [False]},  # fewer flags than streams
        {"streams": ["t", "t"]},  # a stream twice
        {  # a stream without values
            "counts": [2, 0],
            "texts": [False, False],
            "text_values": [],
            "timestamps_ms": struct.pack("<2q", 1, 2),
        },
        {"timestamps_ms": struct.pack("<2q", 1, 2)},  # fewer timestamps than values
        {"timestamps_ms": b"\x00" * 23},  # not whole int64s
        {"numbers": struct.pack("<3d", 1, 2, 3)},  # more numbers than number values
        {"text_values": []},  # fewer texts than text values
    ],
)
def test_malformed_columns_are_refused_as_invalid(broken: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed) as raised:
        incoming(columns(**broken))
    assert raised.value.fields == {"values": ["not_valid"]}
