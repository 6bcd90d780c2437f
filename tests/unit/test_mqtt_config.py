"""Where the MQTT adapter finds its broker: the URL, else the generated credentials."""

from __future__ import annotations

from pathlib import Path

from adapters.mqtt.config import MqttSettings, _mqtt_url, broker_endpoint
from m2x.broker.files import BrokerFiles, ensure_credentials


def test_credentials_and_port_come_from_the_url(tmp_path: Path) -> None:
    url = "mqtts://us%40er:p%3Ass@broker.example"
    endpoint = broker_endpoint(MqttSettings(data_dir=tmp_path, broker_url=url))
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("broker.example", 8883, True)
    assert (endpoint.username, endpoint.password, endpoint.share_group) == ("us@er", "p:ss", "m2x")
    named = MqttSettings(data_dir=tmp_path, broker_url="mqtt://u:p@h:1", share_group="g")
    assert broker_endpoint(named).share_group == "g"


def test_the_generated_credentials_serve_a_url_without_any(tmp_path: Path) -> None:
    generated = ensure_credentials(BrokerFiles.of(tmp_path))
    settings = MqttSettings(data_dir=tmp_path, broker_url="mqtt://127.0.0.1:4321")
    endpoint = broker_endpoint(settings)
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("127.0.0.1", 4321, False)
    assert (endpoint.username, endpoint.password) == (generated.user, generated.password)
    assert endpoint.share_group == generated.share_group
    anonymous = broker_endpoint(MqttSettings(data_dir=tmp_path / "none"))
    assert (anonymous.username, anonymous.port) == (None, 1883)


def test_bad_urls_are_named() -> None:
    assert _mqtt_url("mqtt://h:1883") is None
    for bad in ("http://h", "mqtt://", "mqtt://h:port", "h:1883"):
        assert _mqtt_url(bad), bad
