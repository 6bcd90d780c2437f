"""Settings of `m2x up` (component name "up": env `M2X_UP_*`, config table `[up]`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m2x.runtime.settings import non_negative, one_of, port, positive, setting


def _mqtt_url(value: str) -> str | None:
    if value == "" or value.startswith(("mqtt://", "mqtts://")):
        return None
    return "must be an mqtt:// or mqtts:// URL"


def _url(value: str) -> str | None:
    if value == "" or value.startswith(("http://", "https://")):
        return None
    return "must be an http:// or https:// URL"


@dataclass(frozen=True, slots=True)
class UpSettings:
    data_dir: Path = setting(Path("var"), "directory holding every component's data")
    http_port: int = setting(8080, "HTTP API port (0: any free port)", port)
    http_host: str = setting("0.0.0.0", "address the HTTP API binds")
    mqtt_port: int = setting(1883, "MQTT port for devices (0: any free port)", port)
    mqtt_host: str = setting("0.0.0.0", "address the MQTT broker binds for devices")
    broker_url: str = setting(
        "",
        "an MQTT 5 broker to use instead of starting Mosquitto: mqtt://user:password@host:port",
        _mqtt_url,
    )
    keys_port: int = setting(0, "keys service gRPC port on 127.0.0.1 (0: any free port)", port)
    storage_port: int = setting(
        0, "storage service gRPC port on 127.0.0.1 (0: any free port)", port
    )
    triggers_port: int = setting(
        0, "triggers service gRPC port on 127.0.0.1 (0: any free port)", port
    )
    public_url: str = setting("", "URL clients use to reach the HTTP API, if not direct", _url)
    log_level: str = setting(
        "INFO", "log level of every component", one_of("DEBUG", "INFO", "WARNING", "ERROR")
    )
    start_timeout: float = setting(60.0, "seconds a component may take to serve", positive)
    stop_timeout: float = setting(
        8.0,
        "seconds all components together may take to stop before being killed",
        non_negative,
    )
