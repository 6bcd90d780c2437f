"""What the benchmarks share: starting the product and an InfluxDB 1.6 peer on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.stack import Stack, start_stack  # noqa: E402

# The baseline of the HTTP benchmarks: aiohttp (with uvloop, as the adapter runs) answering
# 204 to anything after reading the body, as cheap as an HTTP answer gets here.
BARE_SERVER = """
import asyncio, uvloop
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(status=204)
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print('{"event": "ready", "component": "bare", "listen": "127.0.0.1:%d"}'
          % runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""

UNLIMITED = ("--rate-limit-ip", "0", "--rate-limit-key", "0", "--rate-limit-device-writes", "0")


@contextlib.asynccontextmanager
async def product(workdir: Path, http_workers: int = 1) -> AsyncIterator[Stack]:
    """Keys, storage and HTTP adapter (`http_workers` processes) as real processes, no rate limits."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    async with start_stack(workdir, *UNLIMITED, "--workers", str(http_workers)) as stack:
        yield stack


def ensure_package(command: str, package: str) -> str:
    found = shutil.which(command) or (
        f"/usr/bin/{command}" if Path(f"/usr/bin/{command}").exists() else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit(f"{command} is missing: run `sudo apt-get install -y {package}`")
    subprocess.run(["apt-get", "install", "-y", package], capture_output=True, check=False,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    if not shutil.which(command):
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(["apt-get", "install", "-y", package], capture_output=True, check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    return shutil.which(command) or sys.exit(f"{package} could not be installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def influxdb(workdir: Path) -> AsyncIterator[str]:
    """An InfluxDB 1.6 server on loopback with a database `bench`; yields its base URL."""
    binary = ensure_package("influxd", "influxdb")
    port = free_port()
    config = workdir / "influxdb.conf"
    config.write_text(
        "reporting-disabled = true\n"
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
    )
    log = workdir / "influxd.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            binary, "-config", str(config), stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with session.get(url + "/ping") as response:
                        if response.status == 204:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"influxd did not start:\n{tail}")
                await asyncio.sleep(0.1)
            async with session.post(
                url + "/query", data={"q": "CREATE DATABASE bench"}
            ) as response:
                assert response.status == 200
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its live child processes (e.g. HTTP adapter workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += cpu_seconds(int(child))
            except FileNotFoundError:  # exited meanwhile
                pass
    return total
