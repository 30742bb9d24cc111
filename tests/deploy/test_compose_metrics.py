"""The metrics profile agrees with the code: Prometheus scrapes the compose services that serve
METRICS_PORT on that port, and every metric the Grafana dashboard queries is one the code
exports (a renamed metric fails here, not as an empty chart)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import metrics.instruments  # noqa: F401  (registers the instruments this test reads)
from tests.deploy.compose import REPO_ROOT, environment, load_compose

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "orders.json"
METRIC = re.compile(r"\borders_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name the code's instruments export."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("orders_"):
            names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def families() -> set[str]:
    """The names of the code's instruments (without `_total`)."""
    return {f.name for f in REGISTRY.collect() if f.name.startswith("orders_")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose("docker-compose.yml")


def test_every_metric_of_the_dashboard_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    # The reader found the queries (guards against a scan that silently finds nothing).
    assert {"orders_commands_total", "orders_projector_lag_events"} <= used
    assert {"orders_ws_subscriptions"} <= used
    assert used - exported() == set()
    # Every instrument is on the dashboard.
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert families() <= shown


def test_prometheus_scrapes_the_services_on_their_metrics_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    services = compose["services"]
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                assert name in services, f"{job['job_name']} scrapes {name}, not a service"
                env = environment(services[name])
                assert env.get("METRICS_PORT") == str(sd["port"]), name
                assert env.get("HOST") == "0.0.0.0", f"{name} serves metrics on loopback only"
                scraped.add(name)
    serving = {n for n, s in services.items() if "METRICS_PORT" in environment(s)}
    assert scraped == serving


def test_the_metrics_profile_mounts_files_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["metrics"]
        for volume in services[name]["volumes"]:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    uids = {
        t["datasource"]["uid"]
        for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p["targets"]
    }
    assert uids == {datasource["datasources"][0]["uid"]}
