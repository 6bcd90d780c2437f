"""Device locations (spec §4): the current one and the history of waypoints."""

from __future__ import annotations

from m2x.runtime.errors import ValidationFailed
from services.storage.model import Device, Location
from services.storage.state import State

DEFAULT_WAYPOINTS = 30
MAX_WAYPOINTS = 1000


class Locations:
    def __init__(self, state: State) -> None:
        self.state = state

    async def current(self, device: Device) -> tuple[Location | None, list[Location]]:
        location = self.state.locations.get(device.id)
        if location is None:
            return None, []
        return location, await self.history(device, 0, 0, DEFAULT_WAYPOINTS)

    async def history(
        self, device: Device, start_ms: int, end_ms: int, limit: int
    ) -> list[Location]:
        limit = min(max(limit, 1), MAX_WAYPOINTS) if limit else DEFAULT_WAYPOINTS
        return await self.state.store.waypoints(
            device.account_id, device.id, start_ms, end_ms, limit
        )

    async def delete(self, device: Device, from_ms: int, end_ms: int) -> None:
        if not from_ms or not end_ms or from_ms > end_ms:
            missing = {
                name: ["not_present"] for name, v in (("from", from_ms), ("end", end_ms)) if not v
            }
            raise ValidationFailed(missing or {"from": ["not_valid"]})
        await self.state.store.delete_waypoints(device.account_id, device.id, from_ms, end_ms)
        newest = await self.state.store.waypoints(device.account_id, device.id, 0, 0, 1)
        self.state.locations.pop(device.id, None)
        if newest:
            self.state.place(device.id, newest[0])
