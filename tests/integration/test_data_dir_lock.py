"""One process per embedded store: a second `orders` process on a busy DATA_DIR exits 2 in one
line naming the first one's pid, the first serves on untouched, and the lock goes with its
holder however that ends (a SIGKILL included)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO_ROOT, ServerProcess, free_port

SECOND_PROCESSES = {
    "serve": ["serve"],
    "serve --no-projectors": ["serve", "--no-projectors"],
    "project": ["project"],
}


def _run_orders(args: list[str], data_dir: Path, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "DATABASE_URL")}
    env.update(DATA_DIR=str(data_dir), JWT_SECRET=secret, PORT=str(free_port()))
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("lock")
    server = ServerProcess(
        data_dir=root / "data",
        jwt_secret=secrets.token_urlsafe(32),
        log_path=root / "server.log",
    )
    with server:
        yield server


@pytest.mark.parametrize("command", SECOND_PROCESSES)
def test_a_second_process_on_a_busy_data_dir_exits_2_naming_the_first(
    first: ServerProcess, command: str
) -> None:
    second = _run_orders(SECOND_PROCESSES[command], first.data_dir, first.jwt_secret)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"in use by process {first.pid}" in lines[0]
    assert str(first.data_dir) in lines[0]
    assert httpx.get(f"{first.url}/livez", trust_env=False).status_code == 200


def test_the_lock_file_names_the_holder(first: ServerProcess) -> None:
    assert (first.data_dir / "orders.lock").read_text().strip() == str(first.pid)


def test_the_lock_goes_with_a_killed_holder(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(32)
    data_dir = tmp_path / "data"
    killed = ServerProcess(data_dir=data_dir, jwt_secret=secret, log_path=tmp_path / "1.log")
    killed.start()
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(15) == -signal.SIGKILL
    killed.stop()
    with ServerProcess(data_dir=data_dir, jwt_secret=secret, log_path=tmp_path / "2.log") as next_:
        assert (data_dir / "orders.lock").read_text().strip() == str(next_.pid)
