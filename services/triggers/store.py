"""ClickHouse access of the triggers service: trigger rows, evaluator state, the log."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from m2x.runtime.clickhouse import Database
from services.triggers.model import Event, Owner, Spec, State, Trigger

_TRIGGER_COLUMNS = (
    "id", "account_id", "device_id", "distribution_id", "name", "conditions_json", "frequency",
    "interval", "timeframe", "callback_url", "status", "send_location", "notify_on_reset",
    "custom_data", "created_ms", "updated_ms", "since_version", "revision", "version",
    "is_deleted",
)  # fmt: skip
_ENGINE_COLUMNS = ("kind", "key", "body", "version", "is_deleted")
# Named so that an INSERT does not first ask ClickHouse for the table's structure.
_ENGINE_TYPES = ("LowCardinality(String)", "String", "String", "UInt64", "UInt8")
_LOG_TYPES = ("String", "String", "String", "String", "DateTime64(3, 'UTC')", "UInt64", "String",
              "UInt16")  # fmt: skip
_LOG_COLUMNS = (
    "account_id", "device_id", "distribution_id", "trigger_id", "at", "seq", "payload",
    "response_code",
)  # fmt: skip
CURSOR, STATE, OUTBOX = "cursor", "state", "outbox"
# One row of engine_state, as _ENGINE_COLUMNS name them.
EngineRow: TypeAlias = tuple[str, str, str, int, int]


@dataclass(frozen=True, slots=True)
class LogRow:
    owner: Owner
    trigger_id: str
    at_ms: int
    payload: bytes  # JSON
    response_code: int


@dataclass(slots=True)
class Engine:
    """What the evaluator left behind: where to resume, trigger states, undelivered events."""

    cursor: int
    states: dict[str, State]
    outbox: list[Event]


def _trigger_row(t: Trigger, version: int, deleted: bool) -> tuple[Any, ...]:
    s = t.spec
    return (
        t.id, t.owner.account_id, t.owner.device_id, t.owner.distribution_id, s.name,
        orjson.dumps(s.conditions).decode(), s.frequency, s.interval, s.timeframe,
        s.callback_url, s.status, int(s.send_location), int(s.notify_on_reset), s.custom_data,
        t.created_ms, t.updated_ms, t.since_version, t.revision, version, int(deleted),
    )  # fmt: skip


def _trigger(row: tuple[Any, ...]) -> Trigger:
    (id_, account, device, distribution, name, conditions, frequency, interval, timeframe, url,
     status, send_location, notify_on_reset, custom_data, created, updated, since,
     revision) = row  # fmt: skip
    spec = Spec(
        name=name, conditions=orjson.loads(conditions), frequency=frequency, interval=interval,
        timeframe=timeframe, callback_url=url, status=status, send_location=bool(send_location),
        notify_on_reset=bool(notify_on_reset), custom_data=custom_data,
    )  # fmt: skip
    return Trigger(id_, Owner(account, device, distribution), spec, created, updated, since,
                   revision)  # fmt: skip


class Store:
    """The service is its database's only writer; versions come from one monotonic clock."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_version = 0

    def next_version(self) -> int:
        self._last_version = max(time.time_ns(), self._last_version + 1)
        return self._last_version

    # triggers
    async def load_triggers(self) -> list[Trigger]:
        columns = ", ".join(_TRIGGER_COLUMNS[:-2])
        return [_trigger(r) for r in await self.db.query(f"SELECT {columns} FROM triggers FINAL")]

    async def highest_id(self) -> int:
        """The largest trigger id ever handed out (deleted ones included, until merged away)."""
        rows = await self.db.query("SELECT max(toUInt64OrZero(id)) FROM triggers")
        return int(rows[0][0] or 0)

    async def save_triggers(
        self, saved: Iterable[Trigger] = (), deleted: Iterable[Trigger] = ()
    ) -> None:
        rows = [_trigger_row(t, self.next_version(), False) for t in saved]
        rows += [_trigger_row(t, self.next_version(), True) for t in deleted]
        await self.db.insert("triggers", rows, _TRIGGER_COLUMNS)

    # evaluator state
    async def load_engine(self) -> Engine:
        engine = Engine(0, {}, [])
        for kind, key, body in await self.db.query(
            "SELECT kind, key, body FROM engine_state FINAL"
        ):
            if kind == CURSOR:
                engine.cursor = int(body)
            elif kind == STATE:
                engine.states[key] = State.from_json(orjson.loads(body))
            elif kind == OUTBOX:
                engine.outbox.append(Event.from_json(orjson.loads(body)))
        engine.outbox.sort(key=lambda e: e.created_ms)
        return engine

    def engine_rows(
        self,
        states: dict[str, State],
        events: Sequence[Event],
        delivered: Sequence[str],
        cursor: int | None,
    ) -> list[EngineRow]:
        """Rows saving states, new and delivered events and the cursor; built at once, so
        they show the evaluator as it is now, whatever it does while they are written."""
        rows: list[EngineRow] = [
            (STATE, trigger_id, orjson.dumps(state.to_json()).decode(), self.next_version(), 0)
            for trigger_id, state in states.items()
        ]
        rows += [
            (OUTBOX, e.id, orjson.dumps(e.to_json()).decode(), self.next_version(), 0)
            for e in events
        ]
        rows += [(OUTBOX, event_id, "", self.next_version(), 1) for event_id in delivered]
        if cursor is not None:
            rows.append((CURSOR, "values", str(cursor), self.next_version(), 0))
        return rows

    async def write_engine(self, rows: list[EngineRow]) -> None:
        """One INSERT: a crash keeps all of these rows or none."""
        await self.db.insert_columns(
            "engine_state", [list(c) for c in zip(*rows, strict=True)], _ENGINE_COLUMNS,
            _ENGINE_TYPES,
        )  # fmt: skip

    # log
    async def append_log(self, entries: Sequence[LogRow]) -> None:
        rows = [
            (e.owner.account_id, e.owner.device_id, e.owner.distribution_id, e.trigger_id,
             e.at_ms, self.next_version(), e.payload.decode(), e.response_code)
            for e in entries
        ]  # fmt: skip
        columns = [list(c) for c in zip(*rows, strict=True)]
        await self.db.insert_columns("trigger_log", columns, _LOG_COLUMNS, _LOG_TYPES)

    async def list_log(self, owner: Owner, limit: int) -> list[tuple[str, str, int, int]]:
        """(trigger id, payload JSON, response code, at ms) of the newest entries, newest first."""
        return await self.db.query(
            "SELECT trigger_id, payload, response_code, toUnixTimestamp64Milli(at) "
            "FROM trigger_log WHERE account_id = {a:String} AND device_id = {d:String} "
            "AND distribution_id = {x:String} ORDER BY seq DESC LIMIT {n:UInt32}",
            {"a": owner.account_id, "d": owner.device_id, "x": owner.distribution_id, "n": limit},
        )
