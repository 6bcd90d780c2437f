"""Starts components in dependency order, restarts the ones that die, stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from m2x.supervisor.child import Child, ComponentFailed
from m2x.supervisor.components import Component, Need
from m2x.supervisor.health import connect_address, wait_healthy

logger = logging.getLogger(__name__)

INITIAL_DELAY = 0.2
MAX_DELAY = 10.0
STABLE_AFTER = 30.0  # seconds up after which a crash counts as new, not part of a crash loop
_MIN_GRACE = 0.1


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one component: where it binds and the flags it always gets."""

    component: Component
    host: str
    port: int  # 0: any free port on the first start
    flags: tuple[str, ...] = ()
    needs: tuple[Need, ...] | None = None  # None: all the component's needs


@dataclass(slots=True)
class Unit:
    """A component under supervision: its current process and the address it serves on."""

    launch: Launch
    child: Child | None = None
    listen: str = ""  # as announced by the component
    address: str = ""  # where to connect to it
    keeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.launch.component.name


class Supervisor:
    def __init__(
        self, launches: Sequence[Launch], start_timeout: float, on_change: Callable[[], None]
    ) -> None:
        self.units = [Unit(launch) for launch in launches]
        self._by_name = {unit.name: unit for unit in self.units}
        self._start_timeout = start_timeout
        self._on_change = on_change

    @property
    def keepers(self) -> list[asyncio.Task[None]]:
        return [unit.keeper for unit in self.units if unit.keeper is not None]

    async def start(self) -> None:
        """Start each component once its dependencies serve; ComponentFailed if one cannot."""
        for unit in self.units:
            child = self._spawn(unit)
            self._learn(unit, await child.wait_ready(self._start_timeout))
            await wait_healthy(unit.launch.component, child, unit.address, self._start_timeout)
            logger.info("%s is serving at %s", unit.name, unit.listen, extra={"child": unit.name})
        for unit in self.units:
            unit.keeper = asyncio.create_task(self._keep(unit), name=f"keep-{unit.name}")

    async def stop(self, budget: float) -> None:
        """Stop in reverse dependency order, each given a fair share of what is left of budget."""
        for keeper in self.keepers:
            keeper.cancel()
        await asyncio.gather(*self.keepers, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        running = [unit for unit in reversed(self.units) if unit.child is not None]
        for index, unit in enumerate(running):
            assert unit.child is not None
            share = max(deadline - loop.time(), 0.0) / (len(running) - index)
            await unit.child.stop(max(share, _MIN_GRACE))
            logger.info(
                "%s stopped with code %s",
                unit.name,
                unit.child.exit_code,
                extra={"child": unit.name, "exit_code": unit.child.exit_code},
            )

    def _argv(self, unit: Unit) -> list[str]:
        launch = unit.launch
        # A restarted component gets the port it had, so that its clients simply reconnect.
        port = int(unit.listen.rpartition(":")[2]) if unit.listen else launch.port
        argv = [sys.executable, "-m", launch.component.module]
        if launch.component.listens:
            argv += ["--listen", f"{launch.host}:{port}"]
        argv.extend(launch.flags)
        needs = launch.component.needs if launch.needs is None else launch.needs
        for need in needs:
            address = self._by_name[need.component].address
            argv.extend([need.flag, f"{need.scheme}://{address}" if need.scheme else address])
        return argv

    def _spawn(self, unit: Unit) -> Child:
        unit.child = Child(unit.name, self._argv(unit))
        return unit.child

    def _learn(self, unit: Unit, listen: str) -> None:
        unit.listen = listen
        unit.address = connect_address(listen)
        self._on_change()

    async def _keep(self, unit: Unit) -> None:
        """Restart the component whenever it dies, backing off while it keeps dying."""
        loop = asyncio.get_running_loop()
        delay = INITIAL_DELAY
        while True:
            assert unit.child is not None
            code = await unit.child.wait()
            if unit.child.uptime(loop.time()) >= STABLE_AFTER:
                delay = INITIAL_DELAY
            logger.warning(
                "%s exited with code %s; restarting it in %.1f s",
                unit.name,
                code,
                delay,
                extra={"child": unit.name, "exit_code": code, "delay_s": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            child = self._spawn(unit)
            try:
                self._learn(unit, await child.wait_ready(self._start_timeout))
            except ComponentFailed as exc:
                if child.exit_code is None:  # silent rather than dead: make it dead, try again
                    logger.warning("%s", exc, extra={"child": unit.name})
                    child.kill()
                continue
            logger.info(
                "%s restarted at %s (pid %s)",
                unit.name,
                unit.listen,
                child.pid,
                extra={"child": unit.name, "pid": child.pid},
            )
