"""Settings of the broker component."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.settings import one_of, port, positive, setting


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    data_dir: Path = setting(Path("var"), "data directory; the broker's files go to DIR/broker")
    listen: str = setting(
        "127.0.0.1:0", "backend listener host:port for the MQTT adapters (port 0: any free port)"
    )
    mqtt_port: int = setting(1883, "device listener port (0: any free port)", port)
    mqtt_host: str = setting("0.0.0.0", "address the device listener binds ('::': every address)")
    mosquitto: str = setting("", "the mosquitto binary (default: from PATH or /usr/sbin)")
    max_packet_bytes: int = setting(
        16 * 1024 * 1024, "largest MQTT packet the broker accepts from any client", positive
    )
    start_timeout: float = setting(10.0, "seconds mosquitto may take to serve", positive)
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(3.0, "seconds mosquitto gets to stop", positive)
