"""The notification payload of seed 001: exactly its fields, in its order.

`timestamp` is the timestamp of the value that fired the trigger (in the seed's example it
equals that value's); `unit` is the stream's unit symbol (null without one); `location` is the
device's current location, left out when the device has none (inferred).
"""

from __future__ import annotations

from typing import Any

from m2x.runtime.timefmt import iso_ms
from services.triggers.model import Event
from services.triggers.storage_client import DeviceInfo, StreamInfo


def build(event: Event, device: DeviceInfo, streams: dict[str, StreamInfo]) -> dict[str, Any]:
    trigger = event.snapshot
    payload: dict[str, Any] = {
        "event": event.kind,
        "device": {"id": device.id, "name": device.name, "serial": device.serial},
        "trigger": trigger["name"],
        "conditions": trigger["conditions"],
        "values": {
            stream: {
                "value": value,
                "timestamp": iso_ms(ts),
                "unit": streams[stream].unit if stream in streams else None,
            }
            for stream, (value, ts) in event.values.items()
        },
        "timeframe": trigger["timeframe"],
        "custom_data": trigger["custom_data"],
        "timestamp": iso_ms(event.timestamp_ms),
    }
    if trigger["send_location"] and device.location is not None:
        payload["location"] = device.location
    return payload
