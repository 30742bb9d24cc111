"""Installed as users install it: the wheel, in a fresh virtualenv without the dev extras, ships
the web bundles and runs every command (`--help` for each, `orders demo` against a server)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from api.wiring import cli
from tests.e2e.gql import make_token
from tests.support.processes import REPO_ROOT, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{command} exited {completed.returncode}\n{completed.stdout[-3000:]}\n"
        f"{completed.stderr[-3000:]}"
    )
    return completed.stdout


def _commands() -> list[str]:
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    assert subparsers.choices is not None
    return sorted(subparsers.choices)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the `orders` script of a fresh venv that has it installed without extras)."""
    root = tmp_path_factory.mktemp("packaging")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--wheel-dir",
        root / "dist",
        REPO_ROOT,
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("orders_service-*.whl")
    # No pip of its own (ensurepip takes seconds): this pip installs into it (`--python`),
    # leaving the same packages there as the venv's own pip would.
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python,
        "install", "--quiet", "--disable-pip-version-check", wheel,
        cwd=root,
    )  # fmt: skip
    return wheel, root / "venv" / "bin" / "orders"


def test_the_wheel_ships_the_web_bundles_and_the_lua_scripts(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    built = sorted(p.name for p in (REPO_ROOT / "api" / "static").iterdir() if p.is_file())
    assert "manifest.json" in built, "no web build: cd web && npm ci && npm run build"
    for required in (
        "graphiql.js",
        "graphiql.css",
        "dashboard.js",
        "dashboard.css",
        "manifest.json",
    ):
        assert f"api/static/{required}" in names
    assert any(name.startswith("projections/lua/") for name in names)
    assert not any(name.startswith(("tests/", "scripts/", "web/")) for name in names)


def test_every_command_answers_help(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, orders = installed
    assert "demo" in _commands()
    assert "usage: orders" in _run(orders, "--help", cwd=tmp_path)
    for command in _commands():
        assert f"usage: orders {command}" in _run(orders, command, "--help", cwd=tmp_path)


def _total_orders(http: httpx.Client, token: str, want: int = 5, within: float = 10.0) -> int:
    """dashboardStats' total once it reaches `want` (the views follow the log shortly)."""
    deadline = time.monotonic() + within
    while True:
        body = http.post(
            "/graphql",
            json={"query": "{ dashboardStats { totalOrders } }"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        total: int = body["data"]["dashboardStats"]["totalOrders"]
        if total >= want or time.monotonic() > deadline:
            return total
        time.sleep(0.1)


def test_demo_places_orders_against_the_installed_server(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, orders = installed
    secret = secrets.token_urlsafe(32)
    server = ServerProcess(
        command=[str(orders), "serve"],
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ESDB_URL")}
        env["JWT_SECRET"] = secret
        _run(orders, "demo", "--url", server.url, "--count", "5", cwd=tmp_path, env=env)
        token = make_token(secret, sub="staff-packaging", role="staff")
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            total = _total_orders(http, token)
            page = http.get("/dashboard")
        assert total == 5
        assert page.status_code == 200
        assert "/static/dashboard.js" in page.text
    finally:
        assert server.stop() in (0, -2, 130), server.log_tail()
