"""The deployment files agree with the code: docker-compose.yml, docker-compose.cluster.yml (layered
over it) and the Dockerfile. No Docker here: the files are read as compose and docker would read
them, and every name, port, command and variable in them is checked against what the code does."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from esdbclient.connection_spec import ConnectionSpec

from api.settings.config import Settings
from api.wiring import cli
from tests.deploy.compose import (
    REPO_ROOT,
    Instruction,
    active_services,
    dockerfile,
    environment,
    load_compose,
    merge,
    pyproject,
    variables_the_code_reads,
)

SERVICES = ("eventstore", "redis", "api", "projector")
CLUSTER_NODES = ("esdb1", "esdb2", "esdb3")
# Variables of the image's Python runtime, not of the service's configuration.
RUNTIME_VARIABLES = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    """docker-compose.yml alone: the single-node deployment."""
    return load_compose("docker-compose.yml")


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    """docker-compose.cluster.yml layered over docker-compose.yml, as `-f a -f b` does."""
    return dict(
        merge(load_compose("docker-compose.yml"), load_compose("docker-compose.cluster.yml"))
    )


def command_of(service: dict[str, Any]) -> list[str]:
    """A service's command as an argument list."""
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def healthcheck_text(service: dict[str, Any]) -> str:
    """A compose healthcheck's test as one string."""
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def assert_eventstore_node(name: str, spec: dict[str, Any]) -> dict[str, str]:
    """EventStoreDB 24.10, insecure (the URLs say Tls=false), system projections running."""
    assert spec["image"] == "eventstore/eventstore:24.10", name
    env = environment(spec)
    assert env["EVENTSTORE_INSECURE"] == "true", name
    assert env["EVENTSTORE_RUN_PROJECTIONS"] == "System", name
    assert env["EVENTSTORE_START_STANDARD_PROJECTIONS"] == "true", name
    assert env.get("EVENTSTORE_NODE_PORT", "2113") == "2113", name
    assert "2113" in healthcheck_text(spec), name
    return env


def test_every_service_is_there_with_a_healthcheck_and_a_restart_policy(
    single: dict[str, Any],
) -> None:
    services = active_services(single)
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_eventstore_is_a_single_insecure_node_with_system_projections(
    single: dict[str, Any],
) -> None:
    env = assert_eventstore_node("eventstore", single["services"]["eventstore"])
    assert env["EVENTSTORE_CLUSTER_SIZE"] == "1"


def test_redis_is_redis_7(single: dict[str, Any]) -> None:
    assert str(single["services"]["redis"]["image"]).startswith("redis:7")


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a service's environment gives, with a stand-in for the JWT_SECRET that
    compose requires from the shell (interpolated as `<JWT_SECRET>`, too short to be one)."""
    assert env["JWT_SECRET"] == "<JWT_SECRET>"
    return Settings.from_env(env | {"JWT_SECRET": "s" * 32})


@pytest.mark.parametrize("name", ["api", "projector"])
def test_the_service_environment_is_what_the_code_reads(single: dict[str, Any], name: str) -> None:
    read = variables_the_code_reads()
    # The reader found the settings (guards against the source scan silently finding nothing).
    assert {"ESDB_URL", "REDIS_URL", "JWT_SECRET", "PORT", "LOG_LEVEL", "HEALTH_FILE"} <= read
    env = environment(single["services"][name])
    assert set(env) - read == set(), f"{name} sets variables nothing reads"
    settings = settings_of(env)  # and the code accepts their values
    assert settings.redis_url is not None
    assert settings.esdb_url is not None


def test_urls_name_the_eventstore_and_redis_services(single: dict[str, Any]) -> None:
    for name in ("api", "projector"):
        env = environment(single["services"][name])
        spec = ConnectionSpec(env["ESDB_URL"])  # the client's own parser
        assert (spec.scheme, spec.targets, spec.options.Tls) == (
            "esdb",
            ["eventstore:2113"],
            False,
        )
        assert re.fullmatch(r"redis://redis:6379(/\d+)?", env["REDIS_URL"]), env["REDIS_URL"]
        depends = single["services"][name]["depends_on"]
        assert depends["eventstore"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_commands_parse_with_the_cli(single: dict[str, Any]) -> None:
    parser = cli.build_parser()
    api = parser.parse_args(command_of(single["services"]["api"]))
    assert (api.command, api.no_projectors) == ("serve", True)
    projector = parser.parse_args(command_of(single["services"]["projector"]))
    assert projector.command == "project"


def test_the_projector_scales_and_its_healthcheck_watches_health_file(
    single: dict[str, Any],
) -> None:
    projector = single["services"]["projector"]
    assert "container_name" not in projector
    assert "ports" not in projector
    health_file = environment(projector)["HEALTH_FILE"]
    check = healthcheck_text(projector)
    assert health_file in check
    stale = re.search(r">\s*(\d+)", check)
    assert stale is not None, check
    # The worker touches the file every HEALTH_INTERVAL s: several touches fit in the window.
    assert int(stale.group(1)) >= 3 * cli.HEALTH_INTERVAL


def test_the_api_healthcheck_hits_livez_on_its_port(single: dict[str, Any]) -> None:
    api = single["services"]["api"]
    env = environment(api)
    port = settings_of(env).port
    assert f":{port}/livez" in healthcheck_text(api)
    published = [str(p) for p in api.get("ports", [])]
    assert all(p.rsplit(":", 1)[-1] == str(port) for p in published), published
    assert settings_of(env).host == "0.0.0.0"  # reachable from other containers


def test_cluster_runs_three_gossiping_nodes_instead_of_the_single_one(
    cluster: dict[str, Any],
) -> None:
    services = active_services(cluster)
    assert "eventstore" not in services
    assert set(CLUSTER_NODES) | {"redis", "api", "projector"} <= set(services)
    for node in CLUSTER_NODES:
        spec = services[node]
        env = assert_eventstore_node(node, spec)
        assert env["EVENTSTORE_CLUSTER_SIZE"] == "3"
        assert spec.get("restart") in ("always", "unless-stopped", "on-failure"), node
        seeds = {seed.strip() for seed in env["EVENTSTORE_GOSSIP_SEED"].split(",")}
        assert seeds == {f"{other}:2113" for other in CLUSTER_NODES if other != node}, node
        assert env["EVENTSTORE_NODE_HOST_ADVERTISE_AS"] == node


def test_cluster_clients_list_the_three_nodes_and_wait_only_for_started_services(
    cluster: dict[str, Any],
) -> None:
    services = active_services(cluster)
    for name in ("api", "projector"):
        env = environment(services[name])
        spec = ConnectionSpec(env["ESDB_URL"])  # raises on a URL esdbclient refuses
        # esdb+discover:// takes one DNS name: the alias every node answers to.
        assert spec.scheme == "esdb+discover"
        (target,) = spec.targets
        host, port = target.rsplit(":", 1)
        assert port == "2113"
        for node in CLUSTER_NODES:
            aliases = services[node]["networks"]["default"]["aliases"]
            assert host in aliases, node
        assert spec.options.Tls is False
        assert command_of(services[name]) == command_of(cluster["services"][name])
        depends = services[name]["depends_on"]
        # Depending on a service that does not start (the profiled single node) stops `up`.
        assert set(depends) <= set(services), name
        assert set(CLUSTER_NODES) <= set(depends), name
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on {target}, which does not start"


def instructions(keyword: str) -> list[Instruction]:
    """The Dockerfile's instructions of one kind."""
    return [i for i in dockerfile() if i.keyword == keyword]


def stages() -> dict[str, list[Instruction]]:
    """The Dockerfile's build stages by name (the last, unnamed one as "final")."""
    named: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for instruction in dockerfile():
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            current = [instruction]
            named[words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"] = current
        else:
            current.append(instruction)
    return named


def test_dockerfile_is_slim_non_root_and_installs_the_app_from_pyproject() -> None:
    bases = {name: stage[0].arguments.split()[0] for name, stage in stages().items()}
    assert re.fullmatch(r"node:\d+-slim", bases["web"]), bases
    python_bases = [base for name, base in bases.items() if name != "web"]
    assert python_bases
    assert all(re.fullmatch(r"python:3\.1\d+-slim(-\w+)?", b) for b in python_bases), bases
    users = instructions("USER")
    assert users
    assert users[-1].arguments.split(":")[0] not in ("root", "0")
    runs = " ".join(i.arguments for i in instructions("RUN"))
    assert re.search(r"pip (wheel|install)\b[^&]* \.(\s|$)", runs), "pip must build the app from ."
    copied = " ".join(i.arguments for i in instructions("COPY"))
    assert "pyproject.toml" in copied
    # Every package pyproject ships is in the build context the image copies.
    for pattern in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"\b{package}\b", copied), f"the image does not copy {package}"


def test_dockerfile_runs_the_orders_command_with_a_healthcheck_on_its_port() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    (script,) = json.loads(entrypoint.arguments)
    assert pyproject()["project"]["scripts"][script] == "api.wiring.cli:main"
    (default,) = instructions("CMD")
    cli.build_parser().parse_args(json.loads(default.arguments))
    (healthcheck,) = instructions("HEALTHCHECK")
    # liveness only: a Redis or store outage takes the instance out of rotation (/readyz),
    # it must not get the container restarted
    assert "/livez" in healthcheck.arguments
    assert "/healthz" not in healthcheck.arguments
    assert "PORT" in healthcheck.arguments
    env_names = set()
    for instruction in instructions("ENV"):
        env_names |= set(re.findall(r"(\w+)=", instruction.arguments))
    assert env_names - RUNTIME_VARIABLES <= variables_the_code_reads()


def test_dockerfile_builds_the_web_bundles_in_a_node_stage_into_the_wheel() -> None:
    web = stages()["web"]
    runs = [i.arguments for i in web if i.keyword == "RUN"]
    assert any(re.match(r"npm ci\b", run) for run in runs), "the lockfile must pin what is built"
    assert "npm run build" in runs
    copied = " ".join(i.arguments for i in web if i.keyword == "COPY")
    assert "web/package-lock.json" in copied
    build = stages()["build"]
    # The bundles land where web/build.mjs writes them in a checkout, before the wheel is built.
    copy_from_web = [
        i for i in build if i.keyword == "COPY" and i.arguments.startswith("--from=web ")
    ]
    assert [i.arguments.split()[1:] for i in copy_from_web] == [["/src/api/static", "./api/static"]]
    assert build.index(copy_from_web[0]) < next(
        n for n, i in enumerate(build) if i.keyword == "RUN" and "pip wheel" in i.arguments
    )
    assert "static/*" in pyproject()["tool"]["setuptools"]["package-data"]["api"]
    build_script = (REPO_ROOT / "web" / "build.mjs").read_text()
    assert '"../api/static/"' in build_script
    # Nothing built locally may slip into the image's context.
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {"web/node_modules/", "api/static/", ".venv/"} <= set(ignored)
