"""The API's replicas behind nginx: the load balancer services, their configuration
(deploy/nginx) against the API's own settings, and the API services' proxy trust, caps, health
checks and stop grace, read statically (CI has no Docker)."""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any

import pytest
import uvicorn.config

from api.http.limits import ConnectionLimits, RequestLimits
from api.http.shutdown import DRAIN_TIMEOUT
from api.settings.config import Settings
from api.wiring import cli
from tests.deploy.compose import (
    REPO_ROOT,
    depends_on,
    environment,
    load_compose,
    published_host_ports,
)

BALANCED = {"lb": ("api", "8000"), "lb-pg": ("api-pg", "8001")}
"""Each load balancer, the API service behind it and the host port it publishes."""

NGINX = REPO_ROOT / "deploy" / "nginx"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(load_compose("docker-compose.yml")["services"])


def nginx_config() -> str:
    """nginx.conf and the server template, comments dropped."""
    files = (NGINX / "nginx.conf", NGINX / "templates" / "orders.conf.template")
    return "\n".join(re.sub(r"#.*", "", file.read_text()) for file in files)


def directive(config: str, name: str) -> list[str]:
    """The arguments of every occurrence of a directive."""
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{name}\s+([^;\n]*);", config, re.M)]


def size(value: str) -> int:
    """An nginx size (`2m`, `32k`, `512`) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def seconds(value: str) -> float:
    """A compose or nginx duration (`20s`, `1h`, `1m30s`, `4s`; bare numbers are seconds)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|)", value)
    assert parts, value
    assert "".join(n + u for n, u in parts) == value, value
    return sum(float(n) * units[u] for n, u in parts)


@pytest.mark.parametrize("lb", sorted(BALANCED))
def test_the_balancer_is_nginx_on_the_published_port_in_front_of_its_api(
    services: dict[str, Any], lb: str
) -> None:
    api, port = BALANCED[lb]
    spec = services[lb]
    assert str(spec["image"]).startswith("nginx:"), lb
    assert spec.get("profiles") == services[api].get("profiles"), lb
    assert published_host_ports(spec) == [port]
    api_port = Settings.from_env(environment(services[api]) | {"JWT_SECRET": "s" * 32}).port
    assert environment(spec)["ORDERS_API"] == f"{api}:{api_port}"
    assert depends_on(spec) == {api: "service_healthy"}
    assert "/readyz" in " ".join(spec["healthcheck"]["test"])
    assert spec.get("restart") == "unless-stopped"
    # The mounted files are in the repository where the image reads them.
    mounts = dict(str(v).rsplit(":", 1)[0].split(":", 1) for v in spec["volumes"])
    assert mounts == {
        "./deploy/nginx/nginx.conf": "/etc/nginx/nginx.conf",
        "./deploy/nginx/templates": "/etc/nginx/templates",
    }
    for source in mounts:
        assert (REPO_ROOT / source).exists(), source


def test_nginx_balances_over_every_replica_and_upgrades_websockets() -> None:
    config = nginx_config()
    (upstream,) = re.findall(r"upstream\s+(\w+)\s*\{", config)
    assert directive(config, "proxy_pass") == [f"http://{upstream}"]
    # The service name resolved at run time through Docker's DNS: every replica, later ones too.
    (server,) = directive(config, "server")
    assert server.split()[0] == "${ORDERS_API}"
    assert "resolve" in server.split()
    assert directive(config, "resolver")[0].split()[0] == "127.0.0.11"
    assert directive(config, "listen") == ["8000"]
    headers = {tuple(h.split(None, 1)) for h in directive(config, "proxy_set_header")}
    assert ("Upgrade", "$http_upgrade") in headers
    assert ("Connection", "$connection_upgrade") in headers
    assert directive(config, "proxy_http_version") == ["1.1"]
    # The client's address replaces any X-Forwarded-For it sent: the API trusts the header.
    assert ("X-Forwarded-For", "$remote_addr") in headers
    # Subscriptions outlive nginx's 60 s default read timeout.
    (read_timeout,) = directive(config, "proxy_read_timeout")
    assert seconds(read_timeout) >= 3600


def test_nginx_passes_what_the_api_accepts_and_drops_idle_connections_first() -> None:
    config = nginx_config()
    limits = ConnectionLimits()
    requests = RequestLimits()
    (body,) = directive(config, "client_max_body_size")
    assert size(body) > requests.max_body_bytes  # the API's typed error, not nginx's page
    (buffers,) = directive(config, "large_client_header_buffers")
    assert size(buffers.split()[1]) >= requests.max_header_bytes
    (keepalive,) = directive(config, "keepalive_timeout")
    assert seconds(keepalive) < limits.http_keep_alive_timeout
    (per_client,) = directive(config, "limit_conn")
    assert int(per_client.split()[1]) == limits.max_http_connections_per_address
    (workers,) = directive(config, "worker_connections")
    assert int(workers) >= 2 * limits.max_websockets  # a client and an upstream side each


@pytest.mark.parametrize("api", ["api", "api-pg"])
def test_the_api_behind_the_balancer_trusts_it_raises_its_address_caps_and_drains(
    services: dict[str, Any], api: str
) -> None:
    spec = services[api]
    env = environment(spec)
    settings = Settings.from_env(env | {"JWT_SECRET": "s" * 32})
    assert not published_host_ports(spec)
    assert "container_name" not in spec
    # Liveness for the container; the balancer asks for readiness.
    assert f"127.0.0.1:{settings.port}/livez" in " ".join(spec["healthcheck"]["test"])
    # SIGTERM: SHUTDOWN_GRACE of 503 on /readyz, then up to DRAIN_TIMEOUT for requests in flight.
    grace = seconds(str(spec["stop_grace_period"]))
    assert grace >= settings.shutdown_grace + DRAIN_TIMEOUT + 2
    limits = settings.connection_limits
    assert limits.max_http_connections_per_address == limits.max_http_connections
    assert limits.max_anonymous_websockets_per_address >= 1000
    assert env["FORWARDED_ALLOW_IPS"] == "*"


def test_uvicorn_reads_forwarded_allow_ips_and_serve_keeps_proxy_headers_on() -> None:
    # uvicorn reads the variable itself when `orders serve` passes no forwarded_allow_ips.
    assert '"FORWARDED_ALLOW_IPS"' in inspect.getsource(uvicorn.config.Config.__init__)
    assert inspect.signature(uvicorn.config.Config).parameters["proxy_headers"].default is True
    tree = ast.parse(inspect.getsource(cli.serve).strip())
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Config"
    ]
    passed = {keyword.arg for keyword in call.keywords}
    assert not passed & {"proxy_headers", "forwarded_allow_ips"}
