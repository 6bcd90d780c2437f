"""Files of a running stack under DATA_DIR/run: the exclusive lock and endpoints.json."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from m2x.runtime.private_files import write_private


class StackLocked(Exception):
    """Another `m2x up` holds the data directory."""


class StackNotRunning(Exception):
    """No `m2x up` is running on the data directory."""


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def endpoints_path(data_dir: Path) -> Path:
    return run_dir(data_dir) / "endpoints.json"


def write_private_json(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` atomically with a JSON file only its owner can read (it may hold secrets)."""
    write_private(path, json.dumps(document, indent=2) + "\n")


@contextlib.contextmanager
def hold_lock(data_dir: Path) -> Iterator[None]:
    """Hold DATA_DIR/run/up.lock for the life of the stack; StackLocked if another has it."""
    directory = run_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "up.lock"
    # The descriptor is not inherited by children, so a stray child never keeps the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StackLocked(
                f"m2x up is already running on {data_dir} (pid {owner}); "
                "stop it first or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                endpoints_path(data_dir).unlink()
    finally:
        os.close(fd)


def _lock_held(data_dir: Path) -> bool:
    try:
        fd = os.open(run_dir(data_dir) / "up.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_endpoints(data_dir: Path) -> dict[str, Any]:
    """The endpoints of the stack running on `data_dir`; StackNotRunning if there is none."""
    path = endpoints_path(data_dir)
    # The lock, not the file, tells whether a stack runs: a killed supervisor leaves the file.
    if not _lock_held(data_dir) or not path.exists():
        raise StackNotRunning(f"m2x up is not running on {data_dir} (start it with `m2x up`)")
    endpoints: dict[str, Any] = json.loads(path.read_text())
    return endpoints
