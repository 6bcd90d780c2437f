"""M2X timestamps: ISO 8601 in any offset on input, UTC with 3 decimals on output."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache

_EPOCH_DAY = date(1970, 1, 1).toordinal()
# What devices send nearly always: UTC with a `Z` and up to 9 fractional digits. This form is
# parsed by hand (a batch of 1,000 values has 1,000 of them); anything else takes the full,
# slower path through datetime.
_UTC_FORM = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def iso_ms(epoch_ms: int) -> str:
    """`2014-07-16T02:55:12.345Z` for milliseconds since the epoch."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _day_ms(day: str) -> int:
    return (date.fromisoformat(day).toordinal() - _EPOCH_DAY) * 86_400_000


def parse_iso(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 timestamp; extra fractions are truncated.

    A timestamp without an offset is taken as UTC. Raises ValueError when it is not ISO 8601.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("not an ISO 8601 timestamp")
    fast = _UTC_FORM.fullmatch(text)
    if fast is not None:
        day, hours, minutes, seconds, fraction = fast.groups()
        h, m, s = int(hours), int(minutes), int(seconds)
        if h < 24 and m < 60 and s < 60:
            millis = int((fraction or "0").ljust(3, "0")[:3])
            return _day_ms(day) + ((h * 60 + m) * 60 + s) * 1000 + millis
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # Only instants that can be written back as a four-digit UTC year are accepted.
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None
    seconds_since = int(moment.timestamp() // 1)
    return seconds_since * 1000 + moment.microsecond // 1000
