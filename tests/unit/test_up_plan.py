"""`m2x up`'s plan: the broker and MQTT adapter, or an external broker by URL."""

from __future__ import annotations

from pathlib import Path

from m2x.cli.up import Stack, plan
from m2x.supervisor.settings import UpSettings
from m2x.supervisor.supervisor import Supervisor


def launches(**settings: object) -> dict[str, object]:
    up = UpSettings(data_dir=Path("/data"), **settings)  # type: ignore[arg-type]
    return {launch.component.name: launch for launch in plan(up, None)}


def argv(**settings: object) -> dict[str, list[str]]:
    """Each component's command line, with every other component at 127.0.0.1:<10000 + i>."""
    stack = Stack(UpSettings(data_dir=Path("/data"), **settings), None)  # type: ignore[arg-type]
    supervisor: Supervisor = stack.supervisor
    for i, unit in enumerate(supervisor.units):
        unit.address = f"127.0.0.1:{10000 + i}"
    return {unit.name: supervisor._argv(unit) for unit in supervisor.units}


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_default_runs_a_broker_before_the_mqtt_adapter() -> None:
    names = list(launches())
    assert names.index("broker") < names.index("mqtt")
    assert {"keys", "storage", "http"} < set(names[: names.index("mqtt")])
    commands = argv(mqtt_port=1999)
    broker, mqtt = commands["broker"], commands["mqtt"]
    assert (flag(broker, "--mqtt-port"), flag(broker, "--mqtt-host")) == ("1999", "0.0.0.0")
    assert flag(broker, "--listen") == "127.0.0.1:0"  # the backend listener: loopback only
    assert "--listen" not in mqtt  # the adapter serves no port
    units = list(commands)
    assert flag(mqtt, "--broker-url") == f"mqtt://127.0.0.1:{10000 + units.index('broker')}"
    assert flag(mqtt, "--public-url") == f"http://127.0.0.1:{10000 + units.index('http')}"
    assert flag(mqtt, "--keys-address") == f"127.0.0.1:{10000 + units.index('keys')}"


def test_an_external_broker_replaces_ours() -> None:
    url = "mqtt://user:pw@broker.example:1884"
    assert "broker" not in launches(broker_url=url)
    commands = argv(broker_url=url, public_url="https://m2x.example")
    mqtt = commands["mqtt"]
    assert mqtt.count("--broker-url") == 1 and flag(mqtt, "--broker-url") == url
    assert mqtt.count("--public-url") == 1 and flag(mqtt, "--public-url") == "https://m2x.example"
    assert Stack(UpSettings(broker_url=url), None).mqtt_url == "mqtt://broker.example:1884"


def test_mqtt_port_zero_is_resolved_once() -> None:
    stack = Stack(UpSettings(mqtt_port=0), None)
    port = stack.settings.mqtt_port
    assert port > 0 and stack.mqtt_url == f"mqtt://127.0.0.1:{port}"
    broker = next(u for u in stack.supervisor.units if u.name == "broker")
    assert flag(list(broker.launch.flags), "--mqtt-port") == str(port)
