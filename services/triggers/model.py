"""Triggers, their conditions and their evaluation state (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Value = float | str

NUMERIC_OPS = ("gt", "gte", "lt", "lte")
OPS = (*NUMERIC_OPS, "eq", "not", "changed")
FREQUENCIES = ("single", "periodic", "continuous")
STATUSES = ("enabled", "disabled")


@dataclass(frozen=True, slots=True)
class Owner:
    """A device or (later) a distribution of one account."""

    account_id: str
    device_id: str = ""
    distribution_id: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account_id, self.device_id, self.distribution_id)


@dataclass(frozen=True, slots=True)
class Condition:
    """What one stream must log: every operator holds; `reset` is the re-arm threshold."""

    stream: str
    ops: tuple[tuple[str, Any], ...]  # (op, operand) in the order given
    reset: float | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    """The writable fields of a trigger, validated."""

    name: str
    conditions: dict[str, dict[str, Any]]  # as the public JSON shows them
    frequency: str
    interval: int  # seconds; 0 unless periodic
    timeframe: int  # seconds
    callback_url: str
    status: str = "enabled"
    send_location: bool = True
    notify_on_reset: bool = False
    custom_data: str | None = None

    @property
    def parsed(self) -> tuple[Condition, ...]:
        return tuple(
            Condition(stream, tuple((op, v) for op, v in ops.items() if op != "reset"),
                      float(ops["reset"]) if ops.get("reset") is not None else None)
            for stream, ops in self.conditions.items()
        )  # fmt: skip


@dataclass(slots=True)
class Trigger:
    id: str
    owner: Owner
    spec: Spec
    created_ms: int
    updated_ms: int
    # Values written to storage at or before this feed version are not the trigger's business:
    # they were stored before it existed or was last re-armed (created, conditions changed,
    # enabled). Storage versions are nanosecond clock readings (services/storage/series.py).
    since_version: int
    revision: int  # changes whenever the evaluation state must start afresh
    conditions: tuple[Condition, ...] = ()
    snapshot: dict[str, Any] = field(default_factory=dict)  # for its notifications

    def __post_init__(self) -> None:
        self.conditions = self.spec.parsed
        self.snapshot = snapshot(self.spec)

    @property
    def enabled(self) -> bool:
        return self.spec.status == "enabled"

    @property
    def streams(self) -> frozenset[str]:
        return frozenset(c.stream for c in self.conditions)

    @property
    def remembers(self) -> bool:
        """Whether evaluation needs the latest values kept (multi-stream or `changed`)."""
        return len(self.conditions) > 1 or any(
            op == "changed" for c in self.conditions for op, _ in c.ops
        )


@dataclass(slots=True)
class Latest:
    """A stream's last value as the trigger saw it, and whether its condition held then."""

    value: Value
    timestamp_ms: int
    holds: bool


@dataclass(slots=True)
class State:
    """Where a trigger stands: fired (activated) or armed, and the last value per stream."""

    revision: int
    activated: bool = False
    last_fired_ms: int = 0  # value timestamp of the last notification (periodic)
    latest: dict[str, Latest] = field(default_factory=dict)
    # Values seen before any matching one, for `changed` (the stream's value at creation).
    previous: dict[str, Value] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "activated": self.activated,
            "last_fired_ms": self.last_fired_ms,
            "latest": {s: [v.value, v.timestamp_ms, v.holds] for s, v in self.latest.items()},
            "previous": self.previous,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        return cls(
            revision=int(data["revision"]),
            activated=bool(data["activated"]),
            last_fired_ms=int(data.get("last_fired_ms", 0)),
            latest={s: Latest(v[0], int(v[1]), bool(v[2])) for s, v in data["latest"].items()},
            previous=dict(data.get("previous", {})),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A notification to send: the trigger fired or was reset by the values it saw."""

    id: str  # stable across a replay of the same value: trigger:version:event
    kind: str  # fired, reset
    trigger_id: str
    owner: Owner
    device_id: str  # whose values fired it (a distribution trigger's owner is not a device)
    # The trigger as it was when it fired (name, conditions, timeframe, custom_data,
    # send_location, callback_url): a later edit does not rewrite notifications under way.
    snapshot: dict[str, Any]
    values: dict[str, tuple[Value, int]]  # stream -> (value, timestamp_ms)
    timestamp_ms: int  # of the value that caused it
    created_ms: int  # when it was produced (retries are bounded from here)

    @property
    def device(self) -> Owner:
        return Owner(self.owner.account_id, self.device_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "trigger_id": self.trigger_id,
            "owner": list(self.owner.key), "device_id": self.device_id, "snapshot": self.snapshot,
            "values": {s: list(v) for s, v in self.values.items()},
            "timestamp_ms": self.timestamp_ms, "created_ms": self.created_ms,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(
            id=data["id"], kind=data["kind"], trigger_id=data["trigger_id"],
            owner=Owner(*data["owner"]), device_id=data["device_id"], snapshot=data["snapshot"],
            values={s: (v[0], int(v[1])) for s, v in data["values"].items()},
            timestamp_ms=int(data["timestamp_ms"]), created_ms=int(data["created_ms"]),
        )  # fmt: skip


def snapshot(spec: Spec) -> dict[str, Any]:
    """What a notification needs of its trigger."""
    return {
        "name": spec.name, "conditions": spec.conditions, "timeframe": spec.timeframe,
        "custom_data": spec.custom_data, "send_location": spec.send_location,
        "callback_url": spec.callback_url,
    }  # fmt: skip
