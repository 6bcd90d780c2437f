"""Protocol adapters (HTTP, MQTT) and the transport-neutral API layer they share."""
