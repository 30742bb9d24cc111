"""Values the service could not use fail at start, by name, rather than later inside a part: a Kafka
topic name the broker refuses, a broker list that is not host:port pairs, a HOST no one can listen
on (CONTRACT section 3: one line naming the variable, exit 2)."""

from __future__ import annotations

import pytest

from api.settings.config import Settings, SettingsError, kafka_settings

KAFKA = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}


@pytest.mark.parametrize("topic", ["order-events", "orders.v2", "A_b-9", "x" * 249])
def test_a_kafka_topic_name_is_taken(topic: str) -> None:
    settings = kafka_settings({**KAFKA, "KAFKA_TOPIC": topic})
    assert settings is not None
    assert settings.topic == topic


@pytest.mark.parametrize("topic", ["order events", "orders/eu", "é", ".", "..", "x" * 250])
def test_a_topic_name_kafka_refuses_is_refused_by_name(topic: str) -> None:
    with pytest.raises(SettingsError, match=r"^KAFKA_TOPIC must be a Kafka topic name"):
        kafka_settings({**KAFKA, "KAFKA_TOPIC": topic})


@pytest.mark.parametrize(
    "servers", ["kafka:9092", "k1:9092,k2:9093", "kafka", "10.0.0.1:9092", "[::1]:9092", "[::1]"]
)
def test_a_broker_list_is_taken(servers: str) -> None:
    settings = kafka_settings({"KAFKA_BOOTSTRAP_SERVERS": servers})
    assert settings is not None
    assert settings.bootstrap_servers == servers


@pytest.mark.parametrize(
    "servers", ["kafka:port", "kafka:0", "kafka:70000", "k1:9092,,k2", "a b:1"]
)
def test_a_broker_list_that_is_not_host_port_pairs_is_refused_by_name(servers: str) -> None:
    with pytest.raises(SettingsError, match=r"^KAFKA_BOOTSTRAP_SERVERS must be host:port pairs"):
        kafka_settings({"KAFKA_BOOTSTRAP_SERVERS": servers})


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0.0.0.0", "::", "[::1]", "localhost", "orders.example.com", "orders_api"]
)
def test_a_host_to_listen_on_is_taken(host: str) -> None:
    assert Settings.from_env({"HOST": host}).host == host


@pytest.mark.parametrize(
    "host", ["local host", "http://0.0.0.0", "0.0.0.0:8000", "-orders", "a..b"]
)
def test_a_host_no_one_can_listen_on_is_refused_by_name(host: str) -> None:
    with pytest.raises(SettingsError, match=r"^HOST must be an IP address or a host name"):
        Settings.from_env({"HOST": host})


def test_the_message_echoes_the_value_as_given() -> None:
    with pytest.raises(SettingsError) as refused:
        kafka_settings({**KAFKA, "KAFKA_TOPIC": "order events"})
    assert str(refused.value).endswith("got 'order events'")
