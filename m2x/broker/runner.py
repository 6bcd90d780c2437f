"""Runs Mosquitto in the foreground: generated files, health, ready line, clean stop.

Mosquitto cannot report a port it picked, so port 0 becomes a free port chosen here. When
Mosquitto dies this process exits too, so that the supervisor restarts both on the same ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
import sys
from pathlib import Path

from m2x.broker.files import BrokerFiles, Credentials, ensure_credentials
from m2x.broker.mosquitto_conf import Listener, write_config
from m2x.broker.probe import connack_code
from m2x.broker.settings import BrokerSettings
from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.runtime.lifecycle import announce_ready
from m2x.supervisor.child import die_with_parent

logger = logging.getLogger(__name__)

_POLL = 0.05


class BrokerFailed(Exception):
    """Mosquitto could not be started or stopped serving."""


def find_mosquitto(configured: str) -> str:
    found = configured or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).is_file():
        raise BrokerFailed(
            f"mosquitto not found ({found}); install the mosquitto package (make setup)"
        )
    return found


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host if host not in ("", "0.0.0.0", "::") else "", 0))
        return int(probe.getsockname()[1])


def loopback_of(host: str) -> str:
    """Where to connect to a listener bound on `host`."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


async def wait_serving(
    process: asyncio.subprocess.Process, device: Listener, backend: Listener,
    credentials: Credentials, within: float,
) -> None:  # fmt: skip
    """Until the adapters' credentials are accepted and the device listener answers."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if process.returncode is not None:
            raise BrokerFailed(f"mosquitto exited with code {process.returncode}")
        try:
            code = await connack_code(loopback_of(backend.host), backend.port,
                                      credentials.user, credentials.password)  # fmt: skip
            if code != 0:
                raise BrokerFailed(f"mosquitto refused the generated credentials (code {code})")
            await connack_code(loopback_of(device.host), device.port)
            return
        except (OSError, TimeoutError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerFailed(f"mosquitto did not serve within {within:g} s")
        await asyncio.sleep(_POLL)


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def run_broker(settings: BrokerSettings) -> None:
    stop = stop_event_on_signals()
    binary = find_mosquitto(settings.mosquitto)
    host, _, port = settings.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    backend = Listener(host, int(port) or free_port(host))
    device = Listener(settings.mqtt_host, settings.mqtt_port or free_port(settings.mqtt_host))
    files = BrokerFiles.of(settings.data_dir)
    credentials = ensure_credentials(files)
    run_as = pwd.getpwuid(os.geteuid()).pw_name
    write_config(files, credentials, device, backend, run_as, settings.max_packet_bytes,
                 settings.log_level)  # fmt: skip
    # Mosquitto logs to stderr; its stdout goes there too, as ours carries only the ready line.
    process = await asyncio.create_subprocess_exec(
        binary, "-c", str(files.conf), stdin=asyncio.subprocess.DEVNULL,
        stdout=sys.stderr.fileno(), preexec_fn=die_with_parent(),
    )  # fmt: skip
    try:
        await wait_serving(process, device, backend, credentials, settings.start_timeout)
        announce_ready("broker", f"{backend.host}:{backend.port}")
        logger.info("MQTT broker (mosquitto pid %d) serving devices on %s:%d, adapters on %s:%d",
                    process.pid, device.host, device.port, backend.host, backend.port)  # fmt: skip
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if exited.done():
            raise BrokerFailed(f"mosquitto exited with code {process.returncode}")
        logger.info("shutting down")
    finally:
        await stop_process(process, settings.shutdown_grace)
