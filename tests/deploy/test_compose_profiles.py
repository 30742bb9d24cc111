"""Every deployment starts: the base file alone and with the cluster file layered over it, under
every combination of their profiles. What `docker compose up` would refuse or get wrong is checked
per combination: a dependency on a service that does not start, a URL naming a host nothing
answers to, a healthy-condition on a service without a health check, two services on one host
port, and a service meant to be scaled that fixes a host port or a container name."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

import pytest
from esdbclient.connection_spec import ConnectionSpec

from tests.deploy.compose import (
    FILE_SETS,
    depends_on,
    enabled_services,
    environment,
    load_layers,
    profiles_of,
    published_host_ports,
)

SCALED = {"api", "api-pg", "projector", "projector-pg", "relay"}
"""The services meant to run as many replicas (`--scale`)."""

NOT_CONNECTED = {("relay", "REDIS_URL")}
"""Addresses a service inherits with the shared settings but never connects to (the relay reads
the event store and writes to Kafka), so it need not wait for them."""


def combinations() -> list[tuple[str, frozenset[str]]]:
    """(deployment, profiles) for every subset of every deployment's profiles."""
    cases = []
    for deployment, names in FILE_SETS.items():
        profiles = sorted(profiles_of(load_layers(names)))
        for size in range(len(profiles) + 1):
            for chosen in itertools.combinations(profiles, size):
                cases.append((deployment, frozenset(chosen)))
    return cases


CASES = combinations()


def case_id(case: tuple[str, frozenset[str]]) -> str:
    deployment, profiles = case
    return "+".join([deployment, *sorted(profiles)])


@pytest.fixture(scope="module", params=CASES, ids=[case_id(case) for case in CASES])
def started(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The services one combination starts."""
    deployment, profiles = request.param
    return enabled_services(load_layers(FILE_SETS[deployment]), profiles)


def test_the_combinations_cover_every_profile_and_both_deployments() -> None:
    assert {"postgres", "kafka", "metrics"} <= profiles_of(load_layers(FILE_SETS["single"]))
    assert ("cluster", frozenset({"kafka"})) in CASES
    assert ("cluster", frozenset({"postgres", "kafka", "metrics"})) in CASES


def hostnames(services: dict[str, Any]) -> set[str]:
    """The names other containers reach: service names and their network aliases."""
    names = set(services)
    for spec in services.values():
        for network in (spec.get("networks") or {}).values():
            names |= set((network or {}).get("aliases") or [])
    return names


def hosts_named_by(env: dict[str, str]) -> dict[str, list[str]]:
    """The hosts each address-valued variable of an environment names."""
    named: dict[str, list[str]] = {}
    if "ESDB_URL" in env:
        named["ESDB_URL"] = [t.rsplit(":", 1)[0] for t in ConnectionSpec(env["ESDB_URL"]).targets]
    for variable in ("DATABASE_URL", "REDIS_URL"):
        if variable in env:
            named[variable] = [str(urlsplit(env[variable]).hostname)]
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "ORDERS_API"):
        if variable in env:
            named[variable] = [a.strip().rsplit(":", 1)[0] for a in env[variable].split(",")]
    return named


def test_every_dependency_starts_in_the_same_combination(started: dict[str, Any]) -> None:
    for name, spec in started.items():
        for target, condition in depends_on(spec).items():
            assert target in started, f"{name} depends on {target}, which does not start"
            if condition == "service_healthy":
                assert started[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy; it has no health check"
                )


def test_every_address_names_a_service_that_starts(started: dict[str, Any]) -> None:
    reachable = hostnames(started)
    for name, spec in started.items():
        for variable, hosts in hosts_named_by(environment(spec)).items():
            for host in hosts:
                assert host in reachable, f"{name}'s {variable} names {host}, which does not start"
                if (name, variable) in NOT_CONNECTED:
                    continue
                # And it waits for it, so the first connection is not refused.
                waited = set(depends_on(spec))
                aliases_of = {
                    target
                    for target in waited
                    if host == target or host in hostnames({target: started[target]})
                }
                assert aliases_of, f"{name} does not wait for {host} ({variable})"


def test_no_two_services_publish_one_host_port(started: dict[str, Any]) -> None:
    owners: dict[str, str] = {}
    for name, spec in started.items():
        for port in published_host_ports(spec):
            assert port not in owners, f"{name} and {owners[port]} both publish {port}"
            owners[port] = name


def test_scaled_services_fix_no_host_port_and_no_container_name(started: dict[str, Any]) -> None:
    for name in SCALED & set(started):
        assert not published_host_ports(started[name]), f"--scale {name}=2 would collide"
        assert "container_name" not in started[name], name
