"""Per-second request windows of spec §1.11: per IP, per key, per device for writes.

Windows are the Unix seconds, as M2X's X-RateLimit-Reset implies. They live in the adapter
process: each adapter replica enforces the limits on its own share of the traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix second at which the next window opens

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}

    def hit(self, bucket: str, limit: int, now: float | None = None) -> Verdict:
        """Count one request against `bucket`; a limit of 0 means unlimited."""
        second = int(time.time() if now is None else now)
        if second != self._window:
            # A new window forgets every count at once, so memory stays bounded by one
            # second's worth of distinct clients.
            self._window = second
            self._counts = {}
        count = self._counts.get(bucket, 0) + 1
        self._counts[bucket] = count
        if limit <= 0:
            return Verdict(True, 0, 0, second + 1)
        return Verdict(count <= limit, limit, max(limit - count, 0), second + 1)
