"""The MQTT adapter: devices' requests from the broker into the API layer, answers back."""
