"""API keys and their rules (spec §1.3, §13), free of storage and transport."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from m2x.runtime.errors import PermissionDenied, ValidationFailed

METHODS = ("GET", "POST", "PUT", "DELETE")
_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_NAME = 255


class Kind(StrEnum):
    MASTER = "master"
    DEVICE = "device"
    COLLECTION = "collection"
    DISTRIBUTION = "distribution"


class DeviceAccess(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


def new_secret() -> str:
    """A fresh key string: 32 lowercase hex characters, as M2X keys are."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Spec:
    """The writable fields of a key."""

    name: str = ""
    device_id: str = ""
    stream: str = ""
    distribution_id: str = ""
    collection_id: str = ""
    permissions: tuple[str, ...] = ()
    expires_at_ms: int = 0
    origins: tuple[str, ...] = ()
    device_access: DeviceAccess = DeviceAccess.PUBLIC


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(Spec))


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    account_id: str
    kind: Kind
    primary: bool
    spec: Spec
    created_ms: int
    updated_ms: int

    @property
    def target_id(self) -> str:
        return {
            Kind.DEVICE: self.spec.device_id,
            Kind.COLLECTION: self.spec.collection_id,
            Kind.DISTRIBUTION: self.spec.distribution_id,
        }.get(self.kind, "")


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    active: bool
    created_ms: int


def kind_of(spec: Spec) -> Kind:
    """A key's kind follows from its scope: no device/distribution/collection = master."""
    if spec.device_id:
        return Kind.DEVICE
    if spec.distribution_id:
        return Kind.DISTRIBUTION
    if spec.collection_id:
        return Kind.COLLECTION
    return Kind.MASTER


def validate(spec: Spec) -> Spec:
    """Check every rule of a key's fields at once; returns the spec normalised."""
    errors: dict[str, list[str]] = {}
    if not spec.name.strip():
        errors["name"] = ["not_present"]
    elif len(spec.name) > MAX_NAME:
        errors["name"] = ["not_valid"]
    permissions = tuple(dict.fromkeys(p.upper() for p in spec.permissions))
    if not permissions:
        errors["permissions"] = ["not_present"]
    elif any(p not in METHODS for p in permissions):
        errors["permissions"] = ["not_valid"]
    for field in ("device_id", "distribution_id", "collection_id"):
        value = getattr(spec, field)
        if value and not _ID.match(value):
            errors[field.removesuffix("_id")] = ["not_valid"]
    scopes = [f for f in ("device_id", "distribution_id", "collection_id") if getattr(spec, f)]
    for extra in scopes[1:]:
        errors.setdefault(extra.removesuffix("_id"), []).append("not_valid")
    if spec.stream and (not spec.device_id or len(spec.stream) > MAX_NAME or "/" in spec.stream):
        errors["stream"] = ["not_valid"]
    origins = []
    for origin in spec.origins:
        try:
            network = ipaddress.ip_network(origin.strip(), strict=False)
            # A single address stays written as one; only real ranges carry a prefix length.
            single = network.prefixlen == network.max_prefixlen
            origins.append(str(network.network_address if single else network))
        except ValueError:
            errors["origin"] = ["not_valid"]
    if spec.expires_at_ms < 0:
        errors["expires_at"] = ["not_valid"]
    if errors:
        raise ValidationFailed(errors)
    return dataclasses.replace(
        spec, name=spec.name.strip(), permissions=permissions, origins=tuple(origins)
    )


def updated_spec(current: Key, changes: Spec, fields: tuple[str, ...]) -> Spec:
    """The spec after a partial update; primary keys refuse every change."""
    if current.primary:
        raise PermissionDenied(
            "PRIMARY_KEY_IMMUTABLE", "Primary keys cannot be edited or deleted, only regenerated."
        )
    unknown = [f for f in fields if f not in SPEC_FIELDS]
    if unknown:
        raise ValidationFailed({f: ["not_valid"] for f in unknown})
    merged = dataclasses.replace(current.spec, **{f: getattr(changes, f) for f in fields})
    spec = validate(merged)
    if kind_of(spec) != current.kind:
        # A key keeps its kind: turning a master key into a device key (or back) would
        # silently widen or narrow what every holder of the secret can do.
        raise ValidationFailed({"device": ["not_valid"]})
    return spec


def ensure_deletable(key: Key) -> None:
    if key.primary:
        raise PermissionDenied(
            "PRIMARY_KEY_IMMUTABLE", "Primary keys cannot be edited or deleted, only regenerated."
        )


PRIMARY_NAME = "Primary Key"


def primary_spec(kind: Kind, target_id: str) -> Spec:
    """The spec of a primary key: every method, scoped to its target."""
    return validate(
        Spec(
            name=PRIMARY_NAME,
            permissions=METHODS,
            device_id=target_id if kind is Kind.DEVICE else "",
            collection_id=target_id if kind is Kind.COLLECTION else "",
            distribution_id=target_id if kind is Kind.DISTRIBUTION else "",
        )
    )
