"""`m2x serve mqtt`: run the MQTT adapter until SIGTERM or SIGINT."""

from __future__ import annotations

from adapters.api.api import Limits
from adapters.api.app import build_api
from adapters.api.backends import open_services
from adapters.mqtt.app import MqttAdapter
from adapters.mqtt.config import MqttSettings, broker_endpoint
from m2x.runtime.component import run_component
from m2x.runtime.grpc_server import stop_event_on_signals


async def serve(settings: MqttSettings) -> None:
    stop = stop_event_on_signals()
    async with open_services(
        settings.keys_address, settings.storage_address, settings.rpc_timeout,
        settings.principal_ttl, triggers_address=settings.triggers_address,
    ) as services:  # fmt: skip
        limits = Limits(
            settings.rate_limit_ip, settings.rate_limit_key, settings.rate_limit_device_writes
        )
        api = build_api(services, limits)
        await MqttAdapter(settings, api, services, broker_endpoint(settings)).run(stop)


def main(argv: list[str] | None = None) -> int:
    return run_component("mqtt", MqttSettings, serve, argv, "M2X MQTT adapter")


if __name__ == "__main__":
    raise SystemExit(main())
