"""Start a server of this repository as a subprocess on a free port, and stop it cleanly.

Shared by the end-to-end tests and the benchmarks in `scripts/`, so both exercise the server
exactly as a user starts it (`python -m api serve`, configured through the environment of
CONTRACT section 3).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Variables that would point the server at external services; a server started here uses the
# embedded defaults unless the caller passes them explicitly.
_EXTERNAL_SERVICES = ("ESDB_URL", "DATABASE_URL", "REDIS_URL")

# Loopback health checks must not go through a proxy configured for the package registries.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


PORTS_FROM = 15000
"""Where `free_port` starts picking; it stops below the kernel's ephemeral range."""


def _ephemeral_start() -> int:
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
    except (OSError, IndexError):
        return 32768
    return int(low)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now. Picked at random below the
    kernel's ephemeral range, where `bind(("", 0))` and outgoing connections take theirs: a
    port the kernel chose could be handed to another test's socket (another xdist worker's,
    say) in the second before the server started here binds it."""
    top = max(_ephemeral_start(), PORTS_FROM + 1000)
    for _ in range(200):
        port = secrets.randbelow(top - PORTS_FROM) + PORTS_FROM
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS_FROM}-{top - 1}")


def serve_command() -> list[str]:
    """The service as the README starts it, with this interpreter."""
    return [sys.executable, "-m", "api", "serve"]


def baseline_command() -> list[str]:
    """The no-op baseline, served as `orders serve --no-projectors` serves the public schema
    (`scripts.baseline`; HOST and PORT from the environment, as for the server)."""
    return [sys.executable, "-m", "scripts.baseline"]


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message carries its log's tail."""


class _Subprocess:
    """A process of this repository started on a free port, logging to `log_path`, stopped like
    Ctrl-C. Subclasses say how to start it and when it is ready."""

    def __init__(self, *, log_path: Path, port: int | None) -> None:
        self.port = port if port is not None else free_port()
        # A port picked here may be taken by another process before the server binds it (the
        # suite runs beside other work): such a start is retried on a new port.
        self._port_picked = port is None
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id (None when it is not running)."""
        return self._process.pid if self._process is not None else None

    def _spawn(self, command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        return self._process

    def _fail_if_exited(self, what: str) -> None:
        """Raise `ServerStartError` (with the log) when the process already exited."""
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            self.stop()
            raise ServerStartError(
                f"{what} exited with {code} before it was ready\n{self.log_tail()}"
            )

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it is ready (or fail with its log)."""
        raise NotImplementedError

    def stop(self, timeout: float = 15.0) -> int | None:
        """Interrupt the process like Ctrl-C, wait for it, and return its exit code."""
        process, self._process = self._process, None
        code = _interrupt(process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def wait(self, timeout: float) -> int:
        """Wait until the process exits by itself (a signal sent to `pid`, say); its exit
        code. Raises `subprocess.TimeoutExpired` if it still runs after `timeout` seconds."""
        assert self._process is not None, "not started"
        return self._process.wait(timeout)

    def log_tail(self, lines: int = 60) -> str:
        """The last lines the process wrote, for failure messages."""
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _environment_without_external_services() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL_SERVICES}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess(_Subprocess):
    """One server subprocess: started on `start()`, healthy when `/healthz` answers 200.

    With `ready_parts` it counts as started once those parts of `/healthz`'s details are ok,
    whatever the others say: `serve --no-projectors` on the embedded store has no projector to
    fill the views, so its `views` part never becomes ok, while its command path serves.
    Its stdout and stderr go to `log_path`, whose tail is quoted when something goes wrong.
    """

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        data_dir: Path,
        jwt_secret: str,
        log_path: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_parts: Sequence[str] | None = None,
    ) -> None:
        super().__init__(log_path=log_path, port=port)
        self.command = list(command) if command is not None else serve_command()
        self.data_dir = data_dir
        self.jwt_secret = jwt_secret
        self._extra_env = dict(env or {})
        self.ready_parts = tuple(ready_parts) if ready_parts is not None else None

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = _environment_without_external_services()
        env.update(
            DATA_DIR=str(self.data_dir),
            PORT=str(self.port),
            HOST="127.0.0.1",
            JWT_SECRET=self.jwt_secret,
        )
        if self.ready_parts is not None:
            env["HEALTH_DETAILS"] = "open"  # the parts are read without a token
        env.update(self._extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until `/healthz` answers 200 (or fail with its log)."""
        for attempt in range(3):
            try:
                self._start(timeout)
                return
            except ServerStartError as error:
                if not (self._port_picked and "address already in use" in str(error)):
                    raise
                if attempt == 2:
                    raise
                self.port = free_port()

    def _start(self, timeout: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(self.command, self._environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._fail_if_exited("server")
            if self._healthy():
                log.info("event=server_healthy command=%s url=%s", self.command, self.url)
                return
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"server not healthy within {timeout:.0f} s\n" + self.log_tail())

    def _healthy(self) -> bool:
        try:
            with _NO_PROXY.open(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:
            # 503: some part is down; enough when it is none of `ready_parts`.
            if self.ready_parts is None or error.code != 503:
                return False
            with error:
                try:
                    body = json.loads(error.read() or b"{}")
                except ValueError:
                    return False
            return isinstance(body, dict) and all(body.get(p) == "ok" for p in self.ready_parts)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


class EsdbTestServerProcess(_Subprocess):
    """The repository's EventStoreDB-compatible gRPC test server (`python -m
    tests.support.esdb_server`) as a subprocess on a free port, over its own data directory: a
    stand-in for EventStoreDB on machines without one. Ready when a gRPC channel to it connects;
    `url` is its ESDB_URL.

    Its speed is the embedded store's behind a Python gRPC layer, not EventStoreDB's.
    """

    def __init__(self, *, data_dir: Path, log_path: Path, port: int | None = None) -> None:
        super().__init__(log_path=log_path, port=port)
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        """The connection string the service's ESDB_URL takes."""
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    @property
    def command(self) -> list[str]:
        """How the test server is started, with this interpreter."""
        return [
            sys.executable,
            "-m",
            "tests.support.esdb_server",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "WARNING",
        ]

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it accepts gRPC connections (or fail with its log)."""
        import grpc  # only here: the HTTP-only callers of this module need no gRPC

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(self.command, _environment_without_external_services())
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            ready = grpc.channel_ready_future(channel)
            while time.monotonic() < deadline:
                self._fail_if_exited("test server")
                try:
                    # A connected channel means the HTTP/2 handshake succeeded: the server runs.
                    ready.result(timeout=0.2)
                except grpc.FutureTimeoutError:
                    continue
                log.info("event=esdb_test_server_ready url=%s", self.url)
                return
            ready.cancel()
        self.stop()
        raise ServerStartError(f"test server not ready within {timeout:.0f} s\n" + self.log_tail())


def _interrupt(process: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGINT `process`, wait up to `timeout` (then kill it), and return its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("event=process_killed args=%s stop_timeout=%.0f", process.args, timeout)
            process.kill()
            process.wait()
    return process.returncode


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def orders_process(
    command: Sequence[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`orders COMMAND...` (`python -m api`) as an operator starts it, its output in `log`,
    without the caller's ESDB_URL/REDIS_URL unless `env` sets them; stopped with SIGTERM (killed
    after 20 s) if it still runs at the end."""
    base = {k: v for k, v in os.environ.items() if k not in ("ESDB_URL", "REDIS_URL")}
    base.update(env, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api", *command],
            env=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield process
        finally:
            stop_gently(process)


def stop_gently(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process that still runs, as an orchestrator stops it; kill it after 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
