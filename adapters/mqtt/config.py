"""Settings of the MQTT adapter, and where its broker is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from m2x.broker.files import BrokerFiles, read_credentials
from m2x.runtime.settings import non_negative, one_of, positive, setting


def _mqtt_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        return "must look like mqtt://user:password@host:port (or mqtts://)"
    return None


@dataclass(frozen=True, slots=True)
class MqttSettings:
    data_dir: Path = setting(
        Path("var"), "data directory: the broker's generated credentials are read from DIR/broker"
        " when the broker URL carries none",
    )  # fmt: skip
    broker_url: str = setting(
        "mqtt://127.0.0.1:1883", "MQTT broker: mqtt[s]://user:password@host:port", _mqtt_url
    )
    keys_address: str = setting("127.0.0.1:50051", "address host:port of the keys service")
    storage_address: str = setting("127.0.0.1:50052", "address host:port of the storage service")
    triggers_address: str = setting("127.0.0.1:50053", "address host:port of the triggers service")
    public_url: str = setting(
        "http://127.0.0.1:8080", "public base URL of the HTTP API, for links and command URLs"
    )
    share_group: str = setting(
        "", "shared-subscription group of the adapter replicas (default: the generated one"
        " in DIR/broker, else m2x); keep it secret where devices could subscribe to $share/...",
    )  # fmt: skip
    concurrency: int = setting(256, "requests this replica handles at once", positive)
    queue_limit: int = setting(
        10_000, "received requests waiting for a free slot; beyond, new ones are dropped", positive
    )
    max_body_bytes: int = setting(2 * 1024 * 1024, "largest request envelope accepted", positive)
    max_response_bytes: int = setting(
        15 * 1024 * 1024, "largest response published (keep it under the broker's limit)", positive
    )
    rate_limit_ip: int = setting(
        30, "requests/s with an unknown key, per key (0: off)", non_negative
    )
    rate_limit_key: int = setting(50, "requests/s per API key (0: off)", non_negative)
    rate_limit_device_writes: int = setting(10, "writes/s per device (0: off)", non_negative)
    principal_ttl: float = setting(300.0, "seconds a cached principal is trusted", positive)
    rpc_timeout: float = setting(5.0, "deadline of calls to services, seconds", positive)
    log_level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    shutdown_grace: float = setting(3.0, "seconds requests in flight get on shutdown", positive)


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    share_group: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def broker_endpoint(settings: MqttSettings) -> BrokerEndpoint:
    """The broker from its URL; credentials from the data dir when the URL has none."""
    parts = urlsplit(settings.broker_url)
    tls = parts.scheme == "mqtts"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    group = settings.share_group
    generated = read_credentials(BrokerFiles.of(settings.data_dir))
    if username is None and generated is not None:
        username, password = generated.user, generated.password
        group = group or generated.share_group
    port = parts.port or (8883 if tls else 1883)
    host = parts.hostname or "127.0.0.1"
    return BrokerEndpoint(host, port, tls, username, password, group or "m2x")
