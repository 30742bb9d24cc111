"""A real OpenID Connect provider for the tests: the npm package `oidc-provider` (`provider.mjs`),
started with Node.js on loopback with keys this module makes.

Its clients get JWT access tokens by the client credentials grant, RS256 or ES256, with custom
claims (Keycloak's `realm_access.roles`, a customer id). The private keys stay known here, so a
test can also sign a token exactly as the provider would and change one thing in it (issuer,
expiry) to see that one check refuse it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.processes import free_port

HERE = Path(__file__).resolve().parent
AUDIENCE = "https://orders.test/graphql"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key the provider signs with, and the JWK it publishes."""

    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def private_jwk(self) -> dict[str, Any]:
        """The key as a private JWK (what the provider is configured with)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(self.private))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        """The public key in PEM, as an attacker would find it."""
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str) -> SigningKey:
    """A fresh RS256 key."""
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    """A fresh ES256 key (P-256)."""
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass(frozen=True, slots=True)
class Client:
    """A client of the provider: its tokens are signed with `alg` and carry `claims`."""

    client_id: str
    alg: str
    claims: Mapping[str, Any]
    secret: str = "a-client-secret-for-the-tests"


class OidcProvider:
    """`oidc-provider` in a Node.js process; `start()`, `stop()`, `rotate()`."""

    def __init__(self, root: Path, clients: list[Client]) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.clients = {client.client_id: client for client in clients}
        self.keys = [rsa_key("rsa-1"), ec_key("ec-1")]
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: list[str] = []

    def start(self, timeout: float = 30.0) -> None:
        """Start the provider with the current keys; return once it listens."""
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                "the OIDC tests need Node.js and tests/support/oidc_provider's npm packages "
                "(`cd tests/support/oidc_provider && npm ci`, or scripts/_venv.sh)"
            )
        config = self.root / "oidc-provider.json"
        config.write_text(
            json.dumps(
                {
                    "issuer": self.issuer,
                    "port": self.port,
                    "audience": AUDIENCE,
                    "keys": [key.private_jwk() for key in self.keys],
                    "clients": [
                        {
                            "client_id": c.client_id,
                            "client_secret": c.secret,
                            "alg": c.alg,
                            "claims": dict(c.claims),
                        }
                        for c in self.clients.values()
                    ],
                }
            )
        )
        process = subprocess.Popen(
            [node, str(HERE / "provider.mjs"), str(config)],
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process
        ready = threading.Event()
        assert process.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(process.stdout, ready), daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("oidc-provider did not start:\n" + "".join(self._output))

    def _read(self, stream: IO[str], ready: threading.Event) -> None:
        for line in stream:
            self._output.append(line)
            if line.startswith("ready "):
                ready.set()

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._reader is not None:
            self._reader.join(10)  # it ends at the pipe's end
        if process.stdout is not None:
            process.stdout.close()

    def rotate(self) -> SigningKey:
        """Restart the provider signing RS256 with a new key (new kid); the old one is still
        published, as providers do while tokens signed with it live on."""
        new = rsa_key(f"rsa-{len(self.keys) + 1}")
        self.keys.insert(0, new)
        self.stop()
        self.start()
        return new

    def token(self, client_id: str, *, resource: str | None = None) -> str:
        """An access token for `client_id` by the client credentials grant."""
        client = self.clients[client_id]
        form = {"grant_type": "client_credentials", "scope": "orders"}
        if resource is not None:
            form["resource"] = resource
        response = httpx.post(
            f"{self.issuer}/token",
            data=form,
            auth=(client.client_id, client.secret),
            trust_env=False,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def sign(self, claims: Mapping[str, Any], *, key: SigningKey | None = None) -> str:
        """A token signed with one of the provider's own keys (RS256 by default)."""
        key = key or self.keys[0]
        return jwt.encode(dict(claims), key.private, algorithm=key.alg, headers={"kid": key.kid})

    def stats(self) -> dict[str, int]:
        """How often the JWKS and the discovery document were fetched since it started."""
        stats: dict[str, int] = httpx.get(f"{self.issuer}/test/stats", trust_env=False).json()
        return stats
