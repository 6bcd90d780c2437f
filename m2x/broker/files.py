"""The broker's files under DATA_DIR/broker and the adapters' generated credentials.

Mosquitto 2.0 checks no ACL on SUBSCRIBE, so a device could join the adapters' shared
subscription and make the requests routed to it vanish (the ACL then refuses the delivery).
The share group is therefore a generated secret too, kept beside the adapters' password.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.private_files import write_private

ADAPTER_USER = "m2x-adapter"
# Mosquitto 2's own defaults for `$7$` (PBKDF2-SHA512) password file entries.
_ITERATIONS = 101
_SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str
    share_group: str  # the adapters' shared-subscription group: $share/<group>/m2x/+/requests


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    directory: Path

    @classmethod
    def of(cls, data_dir: Path) -> BrokerFiles:
        return cls(data_dir.resolve() / "broker")

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def passwords(self) -> Path:
        return self.directory / "backend.passwd"

    @property
    def device_acl(self) -> Path:
        return self.directory / "device.acl"

    @property
    def backend_acl(self) -> Path:
        return self.directory / "backend.acl"

    @property
    def credentials(self) -> Path:
        return self.directory / "credentials.json"


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password file line (`$7$`: PBKDF2-SHA512, as mosquitto_passwd writes)."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"{user}:$7${_ITERATIONS}${encoded[0]}${encoded[1]}\n"


def read_credentials(files: BrokerFiles) -> Credentials | None:
    """The adapter's credentials, or None when no broker was set up in this data dir."""
    try:
        document = json.loads(files.credentials.read_text())
        return Credentials(document["user"], document["password"], document["share_group"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def ensure_credentials(files: BrokerFiles) -> Credentials:
    """The adapter's credentials, generated on first use and kept across restarts."""
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = read_credentials(files)
    if existing is not None:
        return existing
    credentials = Credentials(
        ADAPTER_USER, secrets.token_urlsafe(24), "m2x-" + secrets.token_hex(16)
    )
    document = {
        "user": credentials.user,
        "password": credentials.password,
        "share_group": credentials.share_group,
    }
    write_private(files.credentials, json.dumps(document, indent=2) + "\n")
    return credentials
