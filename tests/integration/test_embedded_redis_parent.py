"""The embedded Redis dies with the process that started it: kill -9 of the service leaves no
redis-server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import REPO_ROOT

_LAUNCH = """
import sys, time
from pathlib import Path
from projections.embedded_redis import launch_redis_server
server = launch_redis_server(Path(sys.argv[1]), Path(sys.argv[1]) / "redis.sock")
print(server.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its new parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_the_embedded_redis_dies_with_a_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while not (tmp_path / "redis.sock").exists():
            assert time.monotonic() < deadline, "redis-server never opened its socket"
            time.sleep(0.05)
        assert _alive(redis_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(redis_pid):
            assert time.monotonic() < deadline, "redis-server outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
