"""The `orders` command: serve the API, issue tokens, print the schema."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from api.auth import DEFAULT_TTL, Authenticator, Role
from api.config import Settings
from api.logs import configure_logging

logger = logging.getLogger(__name__)

LATER = ("project", "rebuild", "demo")
"""Subcommands the read-model issue delivers."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orders", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the API (the default)")
    token = commands.add_parser("token", help="print a signed token (uses JWT_SECRET)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", required=True, help="the subject: a customerId or a staff name")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="seconds (default 3600)")
    commands.add_parser("schema", help="print the GraphQL SDL (> schema.graphql)")
    for name in LATER:
        later = commands.add_parser(name, help="not yet available")
        later.add_argument("args", nargs="*")
    return parser


def serve(settings: Settings) -> None:
    """Run the API with uvicorn on HOST:PORT (uvloop, httptools, no access log)."""
    import uvicorn

    from api.app import create_app

    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=settings.log_level == "DEBUG",
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )


def print_schema() -> None:
    """Print the public schema's SDL."""
    from strawberry.printer import print_schema as to_sdl

    from api.schema import build_schema

    sys.stdout.write(to_sdl(build_schema()) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orders` console script and `python -m api`."""
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "serve":
        serve(Settings.from_env())
    elif command == "token":
        settings = Settings.from_env()
        if settings.jwt_secret_generated:
            sys.stderr.write("JWT_SECRET is not set: a token would match no server.\n")
            return 2
        token = Authenticator(settings.jwt_secret).issue(sub=args.sub, role=args.role, ttl=args.ttl)
        sys.stdout.write(token + "\n")
    elif command == "schema":
        print_schema()
    else:
        sys.stderr.write(f"orders {command}: not yet available (comes with the read models).\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
