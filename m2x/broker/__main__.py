"""`m2x serve broker`: run Mosquitto with the generated configuration until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

from m2x.broker.runner import BrokerFailed, run_broker
from m2x.broker.settings import BrokerSettings
from m2x.runtime.component import run_component

logger = logging.getLogger(__name__)


async def serve(settings: BrokerSettings) -> None:
    try:
        await run_broker(settings)
    except BrokerFailed as exc:
        logger.error("%s", exc)
        # A non-zero exit, so that the supervisor restarts the broker on the same ports.
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> int:
    return run_component("broker", BrokerSettings, serve, argv, "M2X MQTT broker (Mosquitto)")


if __name__ == "__main__":
    raise SystemExit(main())
