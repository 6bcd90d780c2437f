"""Settings of the keys service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from m2x.runtime.service_settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class KeysSettings(ServiceSettings):
    SERVICE: ClassVar[str] = "keys"
