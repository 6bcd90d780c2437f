"""The MQTT broker component: a Mosquitto run with the configuration the project generates."""
