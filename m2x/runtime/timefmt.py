"""M2X timestamps: ISO 8601 in any offset on input, UTC with 3 decimals on output."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(epoch_ms: int) -> str:
    """`2014-07-16T02:55:12.345Z` for milliseconds since the epoch."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_iso(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 timestamp; extra fractions are truncated.

    A timestamp without an offset is taken as UTC. Raises ValueError when it is not ISO 8601.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("not an ISO 8601 timestamp")
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # Only instants that can be written back as a four-digit UTC year are accepted.
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None
    seconds = int(moment.timestamp() // 1)
    return seconds * 1000 + moment.microsecond // 1000
