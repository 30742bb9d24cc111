"""docker-compose.yml's `kafka` profile agrees with the code: Apache Kafka in KRaft mode, the relay
(`orders relay kafka` on EventStoreDB) and the inventory example, each with a health check, all
pointed at the broker's advertised listener and at the same topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.settings.config import kafka_settings
from api.wiring import cli
from examples.inventory.service import InventorySettings
from tests.deploy.compose import (
    _names_read_by,
    active_services,
    environment,
    load_compose,
    pyproject,
    variables_the_code_reads,
)
from tests.deploy.test_compose import command_of, healthcheck_text, settings_of

KAFKA_SERVICES = ("kafka", "relay", "inventory")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    """docker-compose.yml, every profile included."""
    return load_compose("docker-compose.yml")


def advertised(single: dict[str, Any]) -> str:
    listeners = environment(single["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    plaintext = [x for x in listeners.split(",") if x.startswith("PLAINTEXT://")]
    assert len(plaintext) == 1
    return plaintext[0].removeprefix("PLAINTEXT://")


def test_the_profile_has_kafka_in_kraft_mode_the_relay_and_the_inventory(
    single: dict[str, Any],
) -> None:
    services = single["services"]
    for name in KAFKA_SERVICES:
        assert services[name]["profiles"] == ["kafka"], name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("restart") in ("always", "unless-stopped", "on-failure"), name
        assert name not in active_services(single)  # not started without --profile kafka
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    node = env["KAFKA_NODE_ID"]
    controller_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].rsplit(":", 1)[-1]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{controller_port}"
    assert f"CONTROLLER://:{controller_port}" in env["KAFKA_LISTENERS"]
    port = advertised(single).rsplit(":", 1)[-1]
    assert f"PLAINTEXT://:{port}" in env["KAFKA_LISTENERS"]
    assert f"localhost:{port}" in healthcheck_text(kafka)
    assert any(str(v).endswith(env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])
    assert "kafka-data" in single["volumes"]


def test_the_relay_runs_on_eventstoredb_against_the_broker(single: dict[str, Any]) -> None:
    relay = single["services"]["relay"]
    parsed = cli.build_parser().parse_args(command_of(relay))
    assert (parsed.command, parsed.target, parsed.workers) == ("relay", "kafka", 1)
    env = environment(relay)
    read = variables_the_code_reads() | _names_read_by(kafka_settings)
    assert set(env) - read == set(), "the relay sets variables nothing reads"
    # `orders relay kafka` refuses the embedded store (its groups live in `orders serve`)
    assert settings_of(env).store_kind == "eventstoredb"
    kafka = kafka_settings(env)
    assert kafka is not None
    assert kafka.bootstrap_servers == advertised(single)
    assert kafka.idempotent  # a real Kafka: the idempotent producer stays on
    assert env["HEALTH_FILE"] in healthcheck_text(relay)
    depends = relay["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["eventstore"]["condition"] == "service_healthy"


def test_the_inventory_example_reads_the_relays_topic(single: dict[str, Any]) -> None:
    inventory = single["services"]["inventory"]
    env = environment(inventory)
    assert set(env) - _names_read_by(InventorySettings.from_env) == set()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == advertised(single)
    relay = kafka_settings(environment(single["services"]["relay"]))
    assert relay is not None
    assert env["KAFKA_TOPIC"] == relay.topic
    # its database lives on the mounted volume
    mounts = [str(v).split(":", 1) for v in inventory["volumes"]]
    assert any(env["INVENTORY_DB"].startswith(target + "/") for _, target in mounts)
    assert env["HEALTH_FILE"] in healthcheck_text(inventory)

    dockerfile = (REPO_ROOT / inventory["build"]["dockerfile"]).read_text()
    assert "COPY examples/inventory" in dockerfile
    assert 'CMD ["python", "-m", "examples.inventory"]' in dockerfile
    aiokafka = next(d for d in pyproject()["project"]["dependencies"] if d.startswith("aiokafka"))
    assert f'"{aiokafka}"' in dockerfile  # the same client version range as the relay
