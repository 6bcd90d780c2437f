"""Which device a request names and whether its caller reaches it (spec §1.2-§1.4)."""

from __future__ import annotations

from dataclasses import dataclass

from m2x.runtime.errors import NotFound, PermissionDenied
from services.storage.model import Device
from services.storage.store import EntityStore


@dataclass(frozen=True, slots=True)
class Caller:
    account_id: str = ""  # empty: anonymous
    key_kind: str = ""
    device_id: str = ""
    stream: str = ""
    collection_id: str = ""
    distribution_id: str = ""

    @property
    def master(self) -> bool:
        return self.key_kind == "master"


def resolve(
    store: EntityStore,
    caller: Caller,
    device_id: str = "",
    serial: str = "",
    read_only: bool = False,
    master_only: bool = False,
) -> Device:
    """The device a request names, if the caller reaches it; NotFound/PermissionDenied else.

    Devices of other accounts are "not found" (never confirm they exist), except public
    devices for reads. A device key reaches only its own device; disabled devices accept
    nothing but a master key.
    """
    if serial:
        device = store.device_by_serial(caller.account_id, serial) if caller.account_id else None
    else:
        device = store.devices.get(device_id)
    if device is None:
        raise NotFound("Device", device_id or serial)
    own = bool(caller.account_id) and device.account_id == caller.account_id
    if not own:
        if read_only and device.public and not master_only:
            return device
        raise NotFound("Device", device_id or serial)
    if caller.master:
        return device
    if master_only:
        raise PermissionDenied("MASTER_KEY_REQUIRED")
    if caller.key_kind == "device":
        if caller.device_id != device.id:
            raise PermissionDenied("OUT_OF_SCOPE")
    else:
        # Collection and distribution membership arrive with those features; until then
        # such keys reach no device rather than every device.
        raise PermissionDenied("OUT_OF_SCOPE")
    if not device.enabled:
        raise PermissionDenied("DEVICE_DISABLED")
    return device


def check_stream(caller: Caller, stream: str) -> None:
    """A stream-restricted key reaches only its stream."""
    if caller.stream and caller.stream != stream:
        raise PermissionDenied("OUT_OF_SCOPE")
