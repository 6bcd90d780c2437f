"""Tails of recent values against a model of the stored stream: whatever the order of writes,
fills and reads, a tail answers the newest values the stream holds, or nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.storage.batches import Batch
from services.storage.recent import TAIL, RecentValues
from services.storage.value_queries import NUMERIC, TEXT

KEY = ("a", "d", "t", NUMERIC)


def newest(stored: dict[int, float], limit: int) -> list[tuple[int, float]]:
    return sorted(stored.items(), reverse=True)[:limit]


def write(recent: RecentValues, stored: dict[int, float], stamps: list[int]) -> None:
    values = [float(random.random()) for _ in stamps]
    stored.update(zip(stamps, values, strict=True))
    recent.written(Batch.of(NUMERIC, "a", "d", [("t", stamps, values)], 1))


@pytest.mark.parametrize("seed", range(20))
def test_a_tail_answers_what_the_stream_holds(seed: int) -> None:
    random.seed(seed)
    recent, stored = RecentValues(), {}
    span = random.choice([50, 150, 1000])  # few values (complete tails) to many
    pending = None  # a fill under way: (tail, the answer ClickHouse gave)
    for _ in range(300):
        step = random.random()
        if step < 0.5:  # writes: new, old, repeated timestamps, in any order
            write(recent, stored, random.sample(range(span), random.randint(1, 5)))
        elif step < 0.6 and pending is None:  # a read that fills: asked now, answered later
            pending = (recent.start_filling(KEY), newest(stored, TAIL))
        elif step < 0.7 and pending is not None:
            recent.finish_filling(*pending)
            pending = None
        elif step < 0.75:  # a delete of the stream's values
            recent.forget_device("a", "d")
            stored = {t: v for t, v in stored.items() if not 10 <= t < 40}
        else:
            limit = random.choice([1, 10, TAIL])
            answer = recent.newest(KEY, limit)
            assert answer is None or answer == newest(stored, limit)
    if pending is not None:
        recent.finish_filling(*pending)
        assert recent.newest(KEY, TAIL) in (None, newest(stored, TAIL))


def test_a_filled_tail_answers_until_its_device_has_a_delete() -> None:
    recent, stored = RecentValues(), {}
    write(recent, stored, list(range(150)))  # nobody reads the stream: no tail
    assert recent.newest(KEY, 10) is None
    tail = recent.start_filling(KEY)
    assert recent.newest(KEY, 10) is None  # while filling, reads go to ClickHouse
    write(recent, stored, [200, 5])  # a write while filling
    recent.finish_filling(tail, newest({t: stored[t] for t in range(150)}, TAIL))
    assert recent.newest(KEY, TAIL) == newest(stored, TAIL)
    assert recent.newest(KEY, TAIL + 1) is None  # more than a tail holds
    recent.forget_device("a", "d")
    assert recent.newest(KEY, 10) is None


def test_a_fill_that_a_delete_overtook_is_not_kept() -> None:
    recent = RecentValues()
    tail = recent.start_filling(KEY)
    recent.forget_device("a", "d")
    recent.finish_filling(tail, [(1, 1.0)])
    assert recent.newest(KEY, 1) is None


def test_the_least_recently_read_streams_give_their_tails_up() -> None:
    recent = RecentValues(max_tails=2)
    keys = [("a", "d", s, NUMERIC) for s in "xyz"]
    for key in keys[:2]:
        recent.finish_filling(recent.start_filling(key), [(1, 1.0)])
    assert recent.newest(keys[0], 1) == [(1, 1.0)]  # read: x is now the most recent
    recent.finish_filling(recent.start_filling(keys[2]), [(2, 2.0)])
    assert [recent.newest(key, 1) for key in keys] == [[(1, 1.0)], None, [(2, 2.0)]]


def test_text_streams_keep_their_texts() -> None:
    recent = RecentValues()
    key = ("a", "d", "s", TEXT)
    recent.finish_filling(recent.start_filling(key), [(5, "five")])
    recent.written(Batch.of(TEXT, "a", "d", [("s", [7, 5], ["seven", "FIVE"])], 1))
    recent.written(Batch.of(NUMERIC, "a", "d", [("s", np.array([9]), [9.0])], 3))  # other kind
    assert recent.newest(key, 5) == [(7, "seven"), (5, "FIVE")]
