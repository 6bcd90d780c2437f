"""Buffered writes as compact batches: WAL records, replay suffixes and Arrow tables."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from services.storage.batches import Batch, arrow_table, read_record, write_record
from services.storage.value_queries import NUMERIC, TEXT

KINDS = (NUMERIC, TEXT)


def numeric(first: int = 100, account: str = "a", device: str = "d") -> Batch:
    parts = [("t", [5, 6, 7], [1.0, 2.5, -3.0]), ("u", [9, 4], [8.0, 9.0])]
    return Batch.of(NUMERIC, account, device, parts, first)


def rows(batch: Batch | None) -> list[tuple]:
    return [] if batch is None else batch.stored_rows()


def test_rows_carry_consecutive_versions_in_part_order() -> None:
    assert numeric().stored_rows() == [
        ("a", "d", "t", 5, 1.0, 100),
        ("a", "d", "t", 6, 2.5, 101),
        ("a", "d", "t", 7, -3.0, 102),
        ("a", "d", "u", 9, 8.0, 103),
        ("a", "d", "u", 4, 9.0, 104),
    ]


def test_newest_value_of_each_stream() -> None:
    assert list(numeric().newest()) == [("t", 7, -3.0), ("u", 9, 8.0)]
    text = Batch.of(TEXT, "a", "d", [("x", [3, 1], ["late", "early"])], 1)
    assert list(text.newest()) == [("x", 3, "late")]


def test_mismatched_part_is_refused() -> None:
    with pytest.raises(ValueError, match="2 timestamps, 1 values"):
        Batch.of(NUMERIC, "a", "d", [("t", [1, 2], [1.0])], 1)


def test_wal_record_round_trips_through_msgpack() -> None:
    text = Batch.of(TEXT, "a", "d", [("x", [1, 2], ["é", ""])], 200)
    packed = msgpack.packb(write_record("a", "d", numeric(), text), use_bin_type=True)
    batches = read_record(msgpack.unpackb(packed, use_list=True), KINDS)
    assert [rows(b) for b in batches] == [numeric().stored_rows(), text.stored_rows()]


def test_records_of_the_first_format_are_still_read() -> None:
    # [account, device, numeric first version, numeric parts, text first version, text parts]
    old = ["a", "d", 100, [["t", [5, 6, 7], [1.0, 2.5, -3.0]], ["u", [9, 4], [8.0, 9.0]]], 0, []]
    (batch,) = read_record(msgpack.unpackb(msgpack.packb(old), use_list=True), KINDS)
    assert batch.stored_rows() == numeric().stored_rows()


def test_arrow_table_holds_every_batch_in_order() -> None:
    batches = [numeric(100), numeric(500, device="e"), numeric(900, account="b")]
    table = arrow_table(batches).to_pylist()
    expected = [row for b in batches for row in b.stored_rows()]
    got = [
        (r["account_id"], r["device_id"], r["stream"], int(r["ts"].timestamp() * 1000), r["value"],
         r["version"])
        for r in table
    ]  # fmt: skip
    assert got == expected
    texts = [Batch.of(TEXT, "a", "d", [("x", [1], ["one"])], 7), Batch.of(TEXT, "a", "d", [("y", [2, 3], ["two", "three"])], 8)]  # fmt: skip
    assert [(r["stream"], r["value"], r["version"]) for r in arrow_table(texts).to_pylist()] == [
        ("x", "one", 7), ("y", "two", 8), ("y", "three", 9)
    ]  # fmt: skip
    assert np.dtype(arrow_table(batches).column("version").type.to_pandas_dtype()) == np.uint64
