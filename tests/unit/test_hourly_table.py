"""numeric_hourly rows made from an INSERT's Arrow table, against a plain Python grouping."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from services.storage.batches import Batch, arrow_table
from services.storage.hourly import HOUR_MS, hourly_table
from services.storage.value_queries import NUMERIC


def random_batches(rng: random.Random) -> list[Batch]:
    batches = []
    for number in range(rng.randrange(1, 30)):
        parts = []
        for stream in rng.sample(["a", "b", "c", "d"], rng.randrange(1, 4)):
            start = rng.randrange(-3, 3) * HOUR_MS + rng.randrange(HOUR_MS)  # also before 1970
            stamps = [start + rng.randrange(0, 3 * HOUR_MS) for _ in range(rng.randrange(1, 60))]
            if rng.random() < 0.7:  # as devices send them, mostly
                stamps.sort()
            parts.append((stream, stamps, [rng.uniform(-50, 50) for _ in stamps]))
        device, account = rng.choice(["d1", "d2", "d3"]), rng.choice(["x", "y"])
        batches.append(Batch.of(NUMERIC, account, device, parts, 1000 * number + 1))
    return batches


@pytest.mark.parametrize("seed", range(20))
def test_rows_add_up_to_each_hour_of_each_stream(seed: int) -> None:
    batches = random_batches(random.Random(seed))
    expected: dict[tuple[str, str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for account, device, stream, ts, value, _ in (r for b in batches for r in b.stored_rows()):
        expected[(account, device, stream, ts // HOUR_MS * HOUR_MS)].append((ts, value))

    got: dict[tuple[str, str, str, int], dict[str, float]] = {}
    for row in hourly_table(arrow_table(batches)).to_pylist():  # a run each: merge them
        key = (row["account_id"], row["device_id"], row["stream"], row["hour"])
        if key in got:
            seen = got[key]
            for name in ("count", "sum", "sumsq"):
                seen[name] += row[name]
            for name, pick in (("min", min), ("max", max), ("first_ms", min), ("last_ms", max)):
                seen[name] = pick(seen[name], row[name])
        else:
            got[key] = row
    assert got.keys() == expected.keys()
    for key, points in expected.items():
        row, values = got[key], [v for _, v in points]
        assert row["count"] == len(points)
        assert (row["min"], row["max"]) == (min(values), max(values))
        assert (row["first_ms"], row["last_ms"]) == (min(t for t, _ in points), max(t for t, _ in points))  # fmt: skip
        assert math.isclose(row["sum"], math.fsum(values), rel_tol=1e-12, abs_tol=1e-9)
        assert math.isclose(row["sumsq"], math.fsum(v * v for v in values), rel_tol=1e-12)


def test_sorted_writes_of_one_stream_give_a_row_per_hour() -> None:
    stamps = list(range(0, 5 * HOUR_MS, 60_000))
    batch = Batch.of(NUMERIC, "x", "d", [("a", stamps, [1.0] * len(stamps))], 1)
    table = hourly_table(arrow_table([batch]))
    assert table.column("hour").to_pylist() == [h * HOUR_MS for h in range(5)]
    assert table.column("count").to_pylist() == [60] * 5
