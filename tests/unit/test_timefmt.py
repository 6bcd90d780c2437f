"""m2x.runtime.timefmt: ISO 8601 in any offset on input, UTC with milliseconds on output."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from m2x.runtime.timefmt import iso_ms, iso_ms_many, parse_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_output_is_utc_with_three_decimals_and_z() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1405479312345) == "2014-07-16T02:55:12.345Z"
    assert iso_ms(1456826400250) == "2016-03-01T10:00:00.250Z"
    assert iso_ms(1456826400005) == "2016-03-01T10:00:00.005Z"
    assert iso_ms(-500) == "1969-12-31T23:59:59.500Z"
    assert iso_ms(-1) == "1969-12-31T23:59:59.999Z"


def test_output_matches_calendar_arithmetic() -> None:
    rng = random.Random(1234)
    samples = [rng.randrange(-(10**12), 4 * 10**12) for _ in range(2000)]
    samples += [n * 1000 + 999 for n in range(1_700_000_000, 1_700_000_050)]
    for ms in samples:
        text = iso_ms(ms)
        assert FORMAT.fullmatch(text), ms
        expected = EPOCH + timedelta(milliseconds=ms)
        assert text == expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z", ms
        assert parse_iso(text) == ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-07-16T02:55:12.345Z", "2014-07-16T02:55:12.345Z"),
        ("2014-07-16T02:55:12.345+00:00", "2014-07-16T02:55:12.345Z"),
        ("2014-07-16T04:55:12.345+02:00", "2014-07-16T02:55:12.345Z"),
        ("2014-07-15T21:55:12.345-05:00", "2014-07-16T02:55:12.345Z"),
        ("2014-07-16T08:25:12.345+05:30", "2014-07-16T02:55:12.345Z"),
        ("2014-07-16T00:55:12.345-02:00", "2014-07-16T02:55:12.345Z"),
        ("2015-01-01T01:00:00.000+02:00", "2014-12-31T23:00:00.000Z"),  # crosses a year
    ],
)
def test_offsets_are_converted_to_utc(text: str, expected: str) -> None:
    assert iso_ms(parse_iso(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-03-01T10:20:42.347109Z", "2015-03-01T10:20:42.347Z"),
        ("2015-03-01T10:20:42.347999Z", "2015-03-01T10:20:42.347Z"),  # truncated, not rounded
        ("2015-03-01T10:20:59.999999Z", "2015-03-01T10:20:59.999Z"),
        ("2015-03-01T10:20:42.3Z", "2015-03-01T10:20:42.300Z"),
        ("2015-03-01T10:20:42Z", "2015-03-01T10:20:42.000Z"),
        ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999Z"),
    ],
)
def test_extra_fraction_digits_are_truncated_to_milliseconds(text: str, expected: str) -> None:
    assert iso_ms(parse_iso(text)) == expected


def test_a_timestamp_without_offset_is_utc() -> None:
    assert parse_iso("2014-07-16T02:55:12.345") == 1405479312345
    assert parse_iso(" 2014-07-16T02:55:12.345Z ") == 1405479312345


@pytest.mark.parametrize(
    "bad",
    ["", "not a time", "2014-13-01T00:00:00Z", "2014-07-16T25:00:00Z", "16/07/2014",
     "2014-07-16T02:55:12.345Z" + " " * 60, None, 1405479312345, ["2014-07-16"]],
)  # fmt: skip
def test_what_is_not_iso_8601_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_iso(bad)  # type: ignore[arg-type]


def test_years_before_1000_are_written_with_four_digits() -> None:
    ms = parse_iso("0999-12-31T23:59:59.123Z")
    assert iso_ms(ms) == "0999-12-31T23:59:59.123Z"


def test_what_parse_iso_accepts_iso_ms_can_write_back() -> None:
    """A timestamp past 9999-12-31 UTC must be refused on input, not fail on output."""
    try:
        ms = parse_iso("9999-12-31T23:30:00-01:00")  # 10000-01-01T00:30Z
    except ValueError:
        return
    assert FORMAT.fullmatch(iso_ms(ms))


def test_iso_ms_many_writes_what_iso_ms_writes() -> None:
    rng = random.Random("many")
    first, end = -62_135_596_800_000, 253_402_300_800_000  # years 1 to 9999
    stamps = [first, end - 1, -1, 0, 1, 951_782_400_000, 1_405_479_312_345]
    stamps += [rng.randrange(first, end) for _ in range(5000)]
    assert iso_ms_many(stamps) == [iso_ms(ms) for ms in stamps]
    assert iso_ms_many(np.array(stamps[:10], np.int64)) == [iso_ms(ms) for ms in stamps[:10]]
    assert iso_ms_many([]) == []
    with pytest.raises(ValueError):
        iso_ms_many([0, end])  # year 10000 cannot be written with four digits
