"""DSNs: chDB directories and ClickHouse servers, with the service's database."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2x.runtime.clickhouse import parse_dsn


def test_chdb_paths_become_absolute_and_use_the_service_database(tmp_path: Path) -> None:
    dsn = parse_dsn(f"chdb://{tmp_path}/keys", "keys")
    assert (dsn.url, dsn.database, dsn.embedded) == (f"chdb://{tmp_path}/keys", "keys", True)
    relative = parse_dsn("chdb://var/storage", "storage")
    assert relative.url == f"chdb://{Path('var/storage').resolve()}"


def test_server_dsn_keeps_credentials_and_takes_the_database_from_the_path() -> None:
    dsn = parse_dsn("https://m2x:secret@ch.example.com:8443/m2x_keys", "keys")
    assert (dsn.url, dsn.database, dsn.embedded) == (
        "https://m2x:secret@ch.example.com:8443",
        "m2x_keys",
        False,
    )
    assert parse_dsn("http://default:@localhost:8123", "storage").database == "storage"


@pytest.mark.parametrize("bad", ["mysql://host/db", "http://host:8123/bad-name", "http://h/x;drop"])
def test_bad_dsns_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="DSN"):
        parse_dsn(bad, "keys")
