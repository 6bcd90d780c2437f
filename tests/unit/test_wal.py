"""services.storage.wal: records survive in order; a torn tail ends a segment; retired segments go."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from services.storage.wal import WriteAheadLog


def test_records_come_back_in_order_from_every_segment(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    assert wal.open() == []
    wal.append(["a", 1, [1.5, 2.5]])
    wal.seal()
    wal.append(["b", 2, ["text"]], ["c", 3, [4.5]])  # several records, one write
    wal.close()

    again = WriteAheadLog(tmp_path / "wal")
    left = again.open()
    assert [record for number in left for record in again.read(number)] == [
        ["a", 1, [1.5, 2.5]],
        ["b", 2, ["text"]],
        ["c", 3, [4.5]],
    ]
    # The reopened log appends to a new segment; retiring drops the old ones, not it.
    again.append(["c", 3, []])
    again.retire()
    assert len(again.segments()) == 1
    assert [r for n in again.segments() for r in again.read(n)] == [["c", 3, []]]


def test_a_torn_or_corrupt_tail_ends_the_segment(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open()
    for n in range(3):
        wal.append(["record", n])
    wal.close()
    (segment,) = (tmp_path / "wal").glob("*.wal")
    whole = segment.read_bytes()
    segment.write_bytes(whole[:-3])  # the last record half written
    assert [r for n in wal.segments() for r in wal.read(n)] == [["record", 0], ["record", 1]]
    segment.write_bytes(whole[:-1] + bytes([whole[-1] ^ 0xFF]))  # last byte flipped
    assert [r for n in wal.segments() for r in wal.read(n)] == [["record", 0], ["record", 1]]


def test_with_fsync_concurrent_writers_share_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd)))

    async def main() -> None:
        wal = WriteAheadLog(tmp_path / "wal", fsync=True)
        wal.open()

        async def writer(n: int) -> None:
            wal.append(["w", n])
            await wal.synced()

        await asyncio.gather(*(writer(n) for n in range(50)))
        wal.close()

    asyncio.run(main())
    assert 1 <= len(syncs) <= 3  # one for the first writer, one for everyone who came meanwhile
    wal = WriteAheadLog(tmp_path / "wal")
    assert sorted(r[1] for n in wal.segments() for r in wal.read(n)) == list(range(50))
