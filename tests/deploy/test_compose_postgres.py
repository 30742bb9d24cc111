"""docker-compose.yml's `postgres` profile agrees with the code: PostgreSQL 16, the API and
projector workers on DATABASE_URL (and not ESDB_URL), each with a health check."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from api.wiring import cli
from tests.deploy.compose import (
    active_services,
    environment,
    load_compose,
    variables_the_code_reads,
)
from tests.deploy.test_compose import command_of, healthcheck_text, settings_of

PG_SERVICES = ("postgres", "api-pg", "projector-pg")


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    """docker-compose.yml, every profile included."""
    return load_compose("docker-compose.yml")


def test_the_profile_has_postgres_16_the_api_and_projectors_with_healthchecks(
    single: dict[str, Any],
) -> None:
    services = single["services"]
    for name in PG_SERVICES:
        assert services[name]["profiles"] == ["postgres"], name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("restart") in ("always", "unless-stopped", "on-failure"), name
        assert name not in active_services(single)  # not started without --profile postgres
    assert str(services["postgres"]["image"]).startswith("postgres:16")
    assert "pg_isready" in healthcheck_text(services["postgres"])
    assert "postgres-data" in single["volumes"]


@pytest.mark.parametrize("name", ["api-pg", "projector-pg"])
def test_the_services_use_the_profiles_database_and_not_eventstoredb(
    single: dict[str, Any], name: str
) -> None:
    service = single["services"][name]
    env = environment(service)
    read = variables_the_code_reads()
    assert "DATABASE_URL" in read
    assert set(env) - read == set(), f"{name} sets variables nothing reads"
    assert "ESDB_URL" not in env
    settings = settings_of(env)
    assert settings.store_kind == "postgres"

    database = environment(single["services"]["postgres"])
    url = urlsplit(env["DATABASE_URL"].split(":-", 1)[-1].rstrip("}"))
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == database["POSTGRES_USER"]
    assert url.path.lstrip("/") == database["POSTGRES_DB"]
    depends = service["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert "eventstore" not in depends


def test_the_profiles_commands_parse_with_the_cli_and_the_api_checks_its_port(
    single: dict[str, Any],
) -> None:
    parser = cli.build_parser()
    api = single["services"]["api-pg"]
    parsed = parser.parse_args(command_of(api))
    assert (parsed.command, parsed.no_projectors) == ("serve", True)
    assert parser.parse_args(command_of(single["services"]["projector-pg"])).command == "project"
    port = settings_of(environment(api)).port
    assert f":{port}/livez" in healthcheck_text(api)
    assert all(str(p).rsplit(":", 1)[-1] == str(port) for p in api.get("ports", []))
    projector = single["services"]["projector-pg"]
    assert environment(projector)["HEALTH_FILE"] in healthcheck_text(projector)
