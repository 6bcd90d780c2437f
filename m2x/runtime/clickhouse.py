"""ClickHouse access for services: a DSN in, a ready database with migrations applied out.

`chdb:///<dir>` opens ClickHouse's engine in this process (one process per directory);
`http(s)://user:pass@host:port/<db>` reaches a server or cluster. The SQL is the same in both.
clickhouse-connect clients serialise their calls, so each worker thread gets its own client and
blocking calls run on that small pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import io
import logging
import re
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.summary import QuerySummary

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """The services never use pandas (installed for chdb), but clickhouse-connect's first
    INSERT imports it to check for a DataFrame and pyarrow's first array conversion to check
    for pandas types: 0.4-1 s of import with the GIL held, which stalled the storage service's
    first flush and every write behind it, and ~43 MiB per process. Both libraries work
    without pandas installed, which this finder makes it look like (a None entry in
    sys.modules does not: pyarrow's compiled import takes the None for the module)."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not used here)", name=name)


if "pandas" not in sys.modules:
    sys.meta_path.insert(0, _WithoutPandas())

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed DSN: where the server is and which database the service owns."""

    url: str  # DSN without the database, as clickhouse-connect takes it
    database: str
    embedded: bool


def parse_dsn(dsn: str, default_database: str) -> Dsn:
    """Split a DSN; chDB paths become absolute, a missing database defaults to the service's."""
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        path = parts.path or "/"
        if parts.netloc:  # chdb://relative/dir
            path = f"{parts.netloc}{parts.path}"
        absolute = Path(path).expanduser().resolve()
        return Dsn(url=f"chdb://{absolute}", database=default_database, embedded=True)
    if parts.scheme in ("http", "https", "clickhouse", "clickhouses"):
        database = parts.path.strip("/") or default_database
        if not _IDENTIFIER.match(database):
            raise ValueError(f"DSN database name {database!r} is not a plain identifier")
        return Dsn(url=urlunsplit(parts._replace(path="")), database=database, embedded=False)
    raise ValueError(f"DSN scheme must be chdb, http or https, not {parts.scheme!r}")


class Database:
    """One service's ClickHouse database, used from asyncio code."""

    def __init__(self, dsn: Dsn, workers: int = 4) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clickhouse")

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = clickhouse_connect.get_client(dsn=self.dsn.url, database=self.dsn.database)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    async def _run(self, fn: Callable[[Client], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._client()))

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of a SELECT, with `{name:Type}` server-side parameters."""
        rows = await self._run(lambda c: c.query(sql, parameters=parameters).result_rows)
        # clickhouse-connect declares any sequence of sequences; it builds a list of tuples.
        return cast("list[tuple[Any, ...]]", rows)

    async def command(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> str | int | Sequence[str] | QuerySummary:
        return await self._run(lambda c: c.command(sql, parameters=parameters))

    async def query_to_file(
        self,
        sql: str,
        parameters: dict[str, Any],
        path: Path,
        settings: dict[str, Any] | None = None,
        fmt: str = "CSVWithNames",
    ) -> None:
        """A SELECT's result written to the new file `path` as ClickHouse formats it (CSV,
        JSONEachRow...) with these query settings, streamed: a result of millions of rows
        never sits whole in memory.

        chDB hands a query's whole result over at once (a 20M-row CSV took 1.4 GB), so the
        engine in this process writes the file itself (INTO OUTFILE); a server streams it
        over HTTP.
        """
        if self.dsn.embedded:
            target = str(path).replace("\\", "\\\\").replace("'", "\\'")
            statement = f"{sql} INTO OUTFILE '{target}' FORMAT {fmt}"
            await self._run(lambda c: c.command(statement, parameters, settings=settings))
            return

        def stream(client: Client) -> None:
            response = client.raw_stream(sql, parameters, settings, fmt)
            with cast(io.IOBase, response) as source, path.open("xb") as out:
                shutil.copyfileobj(source, out, 1 << 20)

        await self._run(stream)

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        """One INSERT of all `rows`; returns once ClickHouse has written them."""
        if rows:
            await self._run(lambda c: c.insert(table, rows, column_names=list(columns)))

    async def insert_columns(
        self,
        table: str,
        columns: Sequence[Sequence[Any]],
        names: Sequence[str],
        types: Sequence[str] | None = None,
    ) -> None:
        """One column-oriented INSERT: about twice the rows/s of row tuples (FACTS.md).

        Naming the column types spares clickhouse-connect a table lookup per INSERT.
        """
        if columns and len(columns[0]):
            type_names = list(types) if types else None
            await self._run(
                lambda c: c.insert(
                    table,
                    columns,
                    column_names=list(names),
                    column_type_names=type_names,
                    column_oriented=True,
                )
            )

    async def insert_arrow(
        self, table: str, data: pa.Table, settings: dict[str, Any] | None = None
    ) -> None:
        """One INSERT of a pyarrow Table: ClickHouse reads its columns as they are, with no
        Python object per value on the way (the cheapest INSERT of large blocks)."""
        if data.num_rows:
            await self._run(lambda c: c.insert_arrow(table, data, settings=settings))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def _create_database(dsn: Dsn) -> None:
    if dsn.embedded:
        Path(dsn.url.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    bootstrap = clickhouse_connect.get_client(dsn=dsn.url)
    try:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {dsn.database}")
    finally:
        bootstrap.close()


def _split_statements(sql: str) -> list[str]:
    """Statements of a migration file: separated by a `;` that ends a line."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


def read_migrations(folder: Path) -> list[tuple[int, str, list[str]]]:
    """(version, file name, statements) of every `NNNN_name.sql` in `folder`, in order."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        found.append(
            (int(path.name.split("_", 1)[0]), path.name, _split_statements(path.read_text()))
        )
    return found


async def apply_migrations(db: Database, migrations: Path) -> list[str]:
    """Apply `NNNN_name.sql` files not applied yet, in order; returns the names applied."""
    await db.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in await db.query("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, statements in read_migrations(migrations):
        if version in done:
            continue
        for statement in statements:
            await db.command(statement)
        await db.insert("schema_migrations", [(version, name)], ["version", "name"])
        applied.append(name)
        logger.info("applied migration %s", name)
    return applied


async def open_database(dsn: str, service: str, migrations: Path, workers: int = 4) -> Database:
    """Open `service`'s database from `dsn`, creating it and applying its migrations."""
    parsed = parse_dsn(dsn, default_database=service)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _create_database, parsed)
    db = Database(parsed, workers=workers)
    await apply_migrations(db, migrations)
    return db


def dsn_problem(dsn: str) -> str | None:
    """A settings check: why `dsn` is not usable, or None (empty means the chDB default)."""
    if not dsn:
        return None
    try:
        parse_dsn(dsn, "check")
    except ValueError as exc:
        return str(exc)
    return None
