"""parse_iso_many (timestamps converted in bulk) against parse_iso, one at a time, as the truth."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from m2x.runtime import timefmt
from m2x.runtime.timefmt import parse_iso

FIRST = datetime(1, 1, 1, tzinfo=UTC)
SPAN_SECONDS = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - FIRST).total_seconds())

# Texts that are, or nearly are, UTC timestamps with a Z: each is a trap for a bulk parser.
EDGES = [
    "2014-07-16T02:55:12.345Z", "2014-07-16T02:55:12Z", "2014-07-16T02:55:12.3Z",
    "2014-07-16T02:55:12.123456789Z", "2014-07-16T02:55:12.1234567891Z", "2014-07-16T02:55:12.Z",
    "2014-07-16T02:55:12.345z", "2014-07-16t02:55:12.345Z", "2014-07-16 02:55:12.345Z",
    " 2014-07-16T02:55:12.345Z", "2014-07-16T02:55:12.345Z ", "2014-07-16T02:55:12,345Z",
    "2014-07-16T02:55:12.345", "2014-07-16T02:55:12.345+00:00", "2014-07-16T04:55:12.345+02:00",
    "2014-07-15T21:55:12.345-05:00", "2014-07-16T02:55:12.345+0530", "2014-07-16T02:55:12+02",
    "2014-07-16", "2014-07-16T02:55Z", "20140716T025512Z", "2014-W29-3T02:55:12Z",
    "2016-02-29T00:00:00.000Z", "2015-02-29T00:00:00.000Z", "2000-02-29T12:00:00Z",
    "1900-02-29T12:00:00Z", "2400-02-29T23:59:59.999Z", "2100-02-29T00:00:00Z",
    "2014-02-30T00:00:00Z", "2014-04-31T00:00:00Z", "2014-12-31T23:59:59.999Z",
    "2014-00-10T00:00:00Z", "2014-13-10T00:00:00Z", "2014-07-00T00:00:00Z", "2014-07-32T00:00:00Z",
    "2014-07-16T24:00:00Z", "2014-07-16T23:60:00Z", "2014-07-16T23:59:60Z", "2014-07-16T99:99:99Z",
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "0999-12-31T23:59:59.123Z",
    "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00", "10000-01-01T00:00:00Z",
    "2014-07-16T02:55:12.345ZZ", "2014-07-16T02:55:12.345Z\n", "2014-07-16T02:55:12\n.345Z",
    "2014-07-16T02:55:12.345Z\x00", "2014-07-16T02:55:12.3\x005Z", "2014-07-16T02:55:12.34aZ",
    "2014-07-16X02:55:12.345Z", "2014/07/16T02:55:12.345Z", "2014-07-16T02-55-12.345Z",
    # Digits that are not ASCII: full width, Arabic-Indic.
    "\uff12\uff10\uff11\uff14-07-16T02:55:12.345Z", "\u0662\u0660\u0661\u0664-07-16T02:55:12.345Z",
    "2014-07-16T02:55:12.34\uff15Z", "2014-07-16T02:55:12.345\u0396",
    "", " ", "Z", "not a time", "2014-07-16T02:55:12.345Z" + " " * 60, "x" * 30, "0" * 24,
    "-014-07-16T02:55:12.345Z", "+2014-07-16T02:55:12.345Z", "2014-7-16T02:55:12.345Z",
]  # fmt: skip
NOT_TEXT: list[object] = [None, 1405479312345, 1.5, True, ["2014-07-16"], b"2014-07-16T02:55:12Z"]


def outcome(parse: Callable[[Sequence[object]], list[int]], texts: Sequence[object]) -> object:
    try:
        return parse(texts)
    except ValueError:
        return ValueError


def parse_iso_many(texts: Sequence[object]) -> list[int]:
    millis = timefmt.parse_iso_many(texts)
    assert millis.dtype == np.int64
    return millis.tolist()  # type: ignore[no-any-return]


def one_by_one(texts: Sequence[object]) -> list[int]:
    return [parse_iso(text) for text in texts]  # type: ignore[arg-type]


def utc_text(rng: random.Random) -> str:
    """A valid UTC timestamp with a Z and 0 to 9 fraction digits, any year from 1 to 9999."""
    moment = FIRST + timedelta(seconds=rng.randrange(SPAN_SECONDS + 1))
    digits = rng.choice([0, 1, 2, 3, 3, 3, 4, 5, 6, 6, 7, 8, 9])
    fraction = "." + "".join(rng.choice("0123456789") for _ in range(digits)) if digits else ""
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S") + fraction + "Z"


def near_miss(rng: random.Random) -> str:
    """A UTC timestamp with one part changed: an offset, a bad field, a stray character..."""
    text = utc_text(rng)
    change = rng.randrange(6)
    if change == 0:
        minutes = rng.randrange(-14 * 60, 14 * 60 + 1)
        sign = "-" if minutes < 0 else "+"
        return text[:-1] + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if change == 1:
        return text[:-1] if rng.random() < 0.5 else text[:-1] + "z"
    if change == 2:  # any two digits in one field
        start = rng.choice([2, 5, 8, 11, 14, 17])
        return text[:start] + f"{rng.randrange(100):02d}" + text[start + 2 :]
    if change == 3:
        position = rng.randrange(len(text) + 1)
        return text[:position] + rng.choice(" T:.-Z0\n\x00\u00e9\uff10") + text[position:]
    if change == 4:
        position = rng.randrange(len(text))
        return text[:position] + text[position + 1 :]
    return rng.choice(EDGES)


def test_edge_texts_alone_and_in_batches_of_one_form() -> None:
    for text in EDGES + NOT_TEXT:
        for size in (1, 15, 16, 17, 40):
            texts = [text] * size
            assert outcome(parse_iso_many, texts) == outcome(one_by_one, texts), (text, size)


def test_each_edge_text_among_valid_timestamps() -> None:
    rng = random.Random(7)
    for text in EDGES + NOT_TEXT:
        for same_length in (True, False):
            batch: list[object] = [utc_text(rng) for _ in range(50)]
            if same_length:
                batch = ["2020-05-17T10:11:12.131Z"] * 50
            batch.insert(rng.randrange(len(batch) + 1), text)
            good = [t for t in batch if t is not text]
            expected = outcome(one_by_one, batch)
            assert outcome(parse_iso_many, batch) == expected, text
            assert parse_iso_many(good) == one_by_one(good)


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_agree_with_parse_iso(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        size = rng.choice([0, 1, 5, 15, 16, 17, 64, 100, 300, 1000])
        misses = rng.choice([0.0, 0.0, 0.001, 0.01, 0.2, 1.0])
        if rng.random() < 0.3:  # one form (length) for the whole batch, as most clients send
            digits = rng.randrange(10)
            texts = [_with_fraction_digits(utc_text(rng), digits) for _ in range(size)]
        else:
            texts = [utc_text(rng) for _ in range(size)]
        texts = [near_miss(rng) if rng.random() < misses else text for text in texts]
        expected = outcome(one_by_one, texts)
        assert outcome(parse_iso_many, texts) == expected, texts
        if expected is ValueError:  # the valid ones still convert exactly
            good = [text for text in texts if outcome(one_by_one, [text]) is not ValueError]
            assert parse_iso_many(good) == one_by_one(good)


def test_texts_of_two_lengths_that_average_the_first_one() -> None:
    """Lengths 23 and 25 add up like 24s: the line breaks are not where one length puts them."""
    texts = ["2014-07-16T02:55:12.34Z", "2014-07-16T02:55:12.3456Z"] * 20
    texts.insert(0, "2014-07-16T02:55:12.345Z")
    texts.append("2014-07-16T02:55:12.345Z")
    assert parse_iso_many(texts) == one_by_one(texts)


def test_every_day_of_leap_and_common_years() -> None:
    start = datetime(1895, 12, 25, tzinfo=UTC)
    texts = [(start + timedelta(days=n, seconds=n * 37)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
             for n in range(366 * 12)]  # fmt: skip
    texts += [f"{year:04d}-02-{day}T00:00:00Z" for year in range(1, 10_000, 7) for day in (28, 29)]
    expected = [outcome(one_by_one, [text]) for text in texts]
    valid = [text for text, result in zip(texts, expected, strict=True) if result is not ValueError]
    assert parse_iso_many(valid) == one_by_one(valid)
    for text, result in zip(texts, expected, strict=True):
        assert outcome(parse_iso_many, [text] * 20) == (
            result if result is ValueError else result * 20
        ), text


def _with_fraction_digits(text: str, digits: int) -> str:
    head = text[:19]
    return head + ("." + "7" * digits if digits else "") + "Z"


def test_utc_timestamps_are_converted_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk path is taken for what clients send (or its speed is gone, silently)."""
    import m2x.runtime.timefmt as timefmt

    rng = random.Random(3)
    batches = [[utc_text(rng) for _ in range(200)]]
    batches += [[_with_fraction_digits(utc_text(rng), d) for _ in range(100)] for d in range(10)]
    expected = [one_by_one(texts) for texts in batches]

    def refuse(text: object) -> int:
        raise AssertionError(f"{text!r} parsed on its own")

    monkeypatch.setattr(timefmt, "parse_iso", refuse)
    assert [parse_iso_many(texts) for texts in batches] == expected
