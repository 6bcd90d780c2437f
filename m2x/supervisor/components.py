"""The table of components `m2x up` runs, and the order their dependencies impose."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Health(Enum):
    """How the supervisor learns that a component is serving."""

    GRPC = "grpc"  # grpc.health.v1 Check of the component's service name says SERVING
    HTTP = "http"  # GET /v2/status answers 200
    MQTT = "mqtt"  # an MQTT CONNECT is answered (the broker checked its own credentials)
    READY = "ready"  # its ready line is all there is (it serves no port of its own)


@dataclass(frozen=True, slots=True)
class Need:
    """A component this one calls, and the flag through which it receives that address."""

    component: str
    flag: str
    scheme: str = ""  # given as the URL scheme://host:port rather than host:port


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    module: str  # run as `python -m <module>`; `<module>.__main__.main(argv)` for `m2x serve`
    health: Health
    grpc_service: str = ""  # the service name its gRPC health check reports on
    needs: tuple[Need, ...] = ()
    # Names of fields of the `up` settings: the port to bind ("" = any free port), the host to
    # bind ("" = loopback only, as internal services must not be reachable from outside), and
    # settings forwarded as flags of the same name when they are set.
    port_setting: str = ""
    host_setting: str = ""
    forwards: tuple[str, ...] = ()
    listens: bool = True  # takes --listen; an MQTT adapter only connects to its broker
    # An `up` setting that, when set, replaces this component (an external broker); a need of
    # a component that does not run, or whose flag a forwarded setting gives, is dropped.
    skip_if: str = ""


COMPONENTS: tuple[Component, ...] = (
    Component(
        name="keys",
        module="services.keys",
        health=Health.GRPC,
        grpc_service="m2x.keys.v1.KeysService",
        port_setting="keys_port",
    ),
    Component(
        name="storage",
        module="services.storage",
        health=Health.GRPC,
        grpc_service="m2x.storage.v1.StorageService",
        needs=(Need("keys", "--keys-address"),),
        port_setting="storage_port",
    ),
    Component(
        name="triggers",
        module="services.triggers",
        health=Health.GRPC,
        grpc_service="m2x.triggers.v1.TriggersService",
        needs=(Need("storage", "--storage-address"),),
        port_setting="triggers_port",
    ),
    Component(
        name="http",
        module="adapters.http",
        health=Health.HTTP,
        needs=(
            Need("keys", "--keys-address"),
            Need("storage", "--storage-address"),
            Need("triggers", "--triggers-address"),
        ),
        port_setting="http_port",
        host_setting="http_host",
        forwards=("public_url",),
    ),
    Component(
        name="broker",
        module="m2x.broker",
        health=Health.MQTT,
        forwards=("mqtt_port", "mqtt_host"),
        skip_if="broker_url",
    ),
    Component(
        name="mqtt",
        module="adapters.mqtt",
        health=Health.READY,
        needs=(
            Need("keys", "--keys-address"),
            Need("storage", "--storage-address"),
            Need("triggers", "--triggers-address"),
            Need("broker", "--broker-url", scheme="mqtt"),
            Need("http", "--public-url", scheme="http"),
        ),
        forwards=("public_url", "broker_url"),
        listens=False,
    ),
)


def find(name: str, table: tuple[Component, ...] = COMPONENTS) -> Component:
    for component in table:
        if component.name == name:
            return component
    known = ", ".join(c.name for c in table)
    raise KeyError(f"unknown component {name!r} (known: {known})")


def dependency_order(table: tuple[Component, ...] = COMPONENTS) -> list[Component]:
    """Every component after the ones it needs (table order otherwise); fails on a cycle."""
    names = {c.name for c in table}
    for component in table:
        for need in component.needs:
            if need.component not in names:
                raise ValueError(f"{component.name} needs unknown component {need.component}")
    ordered: list[Component] = []
    placed: set[str] = set()
    pending = list(table)
    while pending:
        ready = [c for c in pending if all(n.component in placed for n in c.needs)]
        if not ready:
            raise ValueError("dependency cycle among " + ", ".join(c.name for c in pending))
        ordered.append(ready[0])
        placed.add(ready[0].name)
        pending.remove(ready[0])
    return ordered
