"""`m2x up`: every component as a supervised process, the default account, one ready line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc

from m2x.runtime.grpc_server import stop_event_on_signals
from m2x.supervisor.bootstrap import (
    BootstrapError,
    bootstrap_path,
    ensure_account,
    write_bootstrap,
)
from m2x.supervisor.child import ComponentFailed
from m2x.supervisor.components import Component, dependency_order
from m2x.supervisor.rundir import StackLocked, endpoints_path, hold_lock, write_private_json
from m2x.supervisor.settings import UpSettings
from m2x.supervisor.supervisor import Launch, Supervisor

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SupervisionFailed(Exception):
    """A task restarting a component ended, which it should never do."""


class Stopped(Exception):
    """A signal asked the stack to stop while it was still starting."""


def _launch(
    component: Component, settings: UpSettings, common: list[str], running: set[str]
) -> Launch:
    flags = list(common)
    for name in component.forwards:
        value = getattr(settings, name)
        if value:
            flags += ["--" + name.replace("_", "-"), str(value)]
    host = getattr(settings, component.host_setting) if component.host_setting else "127.0.0.1"
    port = getattr(settings, component.port_setting) if component.port_setting else 0
    needs = tuple(n for n in component.needs if n.component in running and n.flag not in flags)
    return Launch(component, host, port, tuple(flags), needs)


def plan(settings: UpSettings, config_file: Path | None) -> list[Launch]:
    """How to start each component, in dependency order, from the `up` settings."""
    common = ["--data-dir", str(settings.data_dir.resolve()), "--log-level", settings.log_level]
    if config_file is not None:
        common += ["--config", str(config_file.resolve())]
    ordered = [c for c in dependency_order() if not (c.skip_if and getattr(settings, c.skip_if))]
    running = {component.name for component in ordered}
    return [_launch(component, settings, common, running) for component in ordered]


def _device_mqtt_url(settings: UpSettings) -> str:
    if settings.broker_url:  # devices reach that broker by its own address: drop credentials
        parts = urlsplit(settings.broker_url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    host = settings.mqtt_host if settings.mqtt_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"mqtt://{host}:{settings.mqtt_port}"


def _free_port() -> int:
    # Mosquitto cannot announce a port it picked, so port 0 is resolved here, once: the broker
    # keeps that port across restarts and devices keep reconnecting to it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """The running stack's supervisor and the public URLs derived from it."""

    def __init__(self, settings: UpSettings, config_file: Path | None) -> None:
        if not settings.mqtt_port and not settings.broker_url:
            settings = dataclasses.replace(settings, mqtt_port=_free_port())
        self.settings = settings
        self.mqtt_url = _device_mqtt_url(settings)
        self.supervisor = Supervisor(
            plan(settings, config_file), settings.start_timeout, self._write_endpoints
        )

    def address(self, name: str) -> str:
        return next(u.address for u in self.supervisor.units if u.name == name)

    @property
    def http_url(self) -> str:
        return self.settings.public_url.rstrip("/") or f"http://{self.address('http')}"

    def _write_endpoints(self) -> None:
        components = {
            unit.name: {
                "listen": unit.listen,
                "address": unit.address,
                "pid": unit.child.pid if unit.child else None,
            }
            for unit in self.supervisor.units
        }
        document = {
            "supervisor_pid": os.getpid(),
            "http_url": self.http_url if self.address("http") else "",
            "mqtt_url": self.mqtt_url,
            "components": components,
        }
        write_private_json(endpoints_path(self.settings.data_dir), document)


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """The result of `work`, or Stopped (and `work` cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped
    return task.result()


async def _serve(stack: Stack, stop: asyncio.Event) -> None:
    """Start, bootstrap, announce, then run until a signal (or a supervision bug)."""
    settings = stack.settings
    await _unless_stopped(stack.supervisor.start(), stop)
    path = bootstrap_path(settings.data_dir)
    account = await _unless_stopped(ensure_account(stack.address("keys"), path), stop)
    write_bootstrap(path, account, stack.http_url, stack.mqtt_url)
    print(f"m2x ready at {stack.http_url} (master key in {path})", flush=True)
    keepers = stack.supervisor.keepers
    done, _ = await _unless_stopped(
        asyncio.wait(keepers, return_when=asyncio.FIRST_COMPLETED), stop
    )
    # Keepers loop for ever, so one that ended hit a bug: stop rather than run unsupervised.
    raise SupervisionFailed(f"supervision failed: {next(iter(done)).exception()!r}")


async def _run(settings: UpSettings, config_file: Path | None) -> int:
    stop = stop_event_on_signals()
    stack = Stack(settings, config_file)
    problem = ""
    try:
        await _serve(stack, stop)
    except Stopped:
        logger.info("stopping")
    except (ComponentFailed, BootstrapError, SupervisionFailed) as exc:
        problem = str(exc)
    except grpc.aio.AioRpcError as exc:
        problem = f"cannot set up the default account: {exc.code().name}: {exc.details()}"
    finally:
        await stack.supervisor.stop(settings.stop_timeout)
    if problem:
        # Last, after the children's shutdown logs, so that it is what the user sees.
        print(f"m2x up: {problem}", file=sys.stderr, flush=True)
        return 1
    return 0


def run_up(settings: UpSettings, config_file: Path | None) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with hold_lock(settings.data_dir):
            return asyncio.run(_run(settings, config_file))
    except StackLocked as exc:
        print(f"m2x up: {exc}", file=sys.stderr)
        return 1
