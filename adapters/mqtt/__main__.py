"""`m2x serve mqtt`: run the MQTT adapter until SIGTERM or SIGINT."""

from __future__ import annotations

from adapters.api.app import open_api
from adapters.mqtt.app import MqttAdapter
from adapters.mqtt.config import MqttSettings, broker_endpoint
from m2x.runtime.component import run_component
from m2x.runtime.grpc_server import stop_event_on_signals


async def serve(settings: MqttSettings) -> None:
    stop = stop_event_on_signals()
    async with open_api(settings) as api:
        await MqttAdapter(settings, api, api.services, broker_endpoint(settings)).run(stop)


def main(argv: list[str] | None = None) -> int:
    return run_component("mqtt", MqttSettings, serve, argv, "M2X MQTT adapter")


if __name__ == "__main__":
    raise SystemExit(main())
