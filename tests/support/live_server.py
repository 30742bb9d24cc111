"""The real service as a subprocess (`python -m api serve`) on a free port with a fresh
DATA_DIR, and what tests need to talk to it: its URLs and tokens signed with its secret.

The end-to-end, client and abuse suites all start their servers through `running_server`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.gql import make_token
from tests.support.processes import ServerProcess


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveServer:
    """Where a running server listens, and the secret its tokens are signed with."""

    url: str
    ws_url: str
    jwt_secret: str
    process: ServerProcess

    @property
    def port(self) -> int:
        """The port it listens on (for raw sockets)."""
        return self.process.port

    def token(self, *, sub: str, role: str = "customer", ttl: float = 3600.0) -> str:
        """A valid token for this server (a customer's unless `role` says otherwise)."""
        return make_token(self.jwt_secret, sub=sub, role=role, ttl=ttl)


@contextmanager
def running_server(root: Path, env: Mapping[str, str] | None = None) -> Iterator[LiveServer]:
    """A server over a fresh DATA_DIR under `root`, configured by `env`, stopped with SIGINT at
    the end; a server that does not stop cleanly fails the test, with its log to explain it."""
    secret = secrets.token_urlsafe(32)
    process = ServerProcess(
        data_dir=root / "data",
        jwt_secret=secret,
        log_path=root / "server.log",
        env=dict(env or {}),
    )
    process.start()
    try:
        yield LiveServer(
            url=process.url,
            ws_url=process.url.replace("http://", "ws://") + "/graphql",
            jwt_secret=secret,
            process=process,
        )
    finally:
        code = process.stop()
    assert code in (0, -2, 130), f"server exited with {code}\n{process.log_tail()}"
