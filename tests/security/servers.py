"""Real servers for the abuse tests: the service as a user starts it, on the embedded store.

Each test module starts the server it needs (some with tight limits of their own) through
`running_server`; tokens, HTTP and websocket clients come from the end-to-end harness.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.gql import make_token
from tests.processes import ServerProcess


@dataclass(frozen=True, slots=True, kw_only=True)
class SecuredServer:
    """Where a server under attack listens, and the secret its tokens are signed with."""

    url: str
    ws_url: str
    port: int
    jwt_secret: str
    process: ServerProcess

    def token(self, *, sub: str, role: str = "customer", ttl: float = 3600.0) -> str:
        """A valid token for this server (a customer's unless `role` says otherwise)."""
        return make_token(self.jwt_secret, sub=sub, role=role, ttl=ttl)


@contextmanager
def running_server(root: Path, env: Mapping[str, str] | None = None) -> Iterator[SecuredServer]:
    """The real server on the embedded store under `root`, configured by `env`, stopped with
    SIGINT at the end (and required to stop cleanly)."""
    secret = secrets.token_urlsafe(32)
    process = ServerProcess(
        data_dir=root / "data", jwt_secret=secret, log_path=root / "server.log", env=env
    )
    process.start()
    try:
        yield SecuredServer(
            url=process.url,
            ws_url=process.url.replace("http://", "ws://") + "/graphql",
            port=process.port,
            jwt_secret=secret,
            process=process,
        )
    finally:
        code = process.stop()
    assert code in (0, -2, 130), f"server exited with {code}\n{process.log_tail()}"
