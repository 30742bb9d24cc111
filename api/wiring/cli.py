"""The `orders` command: serve the API, run projector workers, rebuild views, place a demo batch,
issue tokens, print the schema, relay the log to Kafka, list and replay parked events."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from api.http.auth import DEFAULT_TTL, Authenticator, Role
from api.http.logs import configure_logging
from api.settings.config import Settings, SettingsError
from api.wiring.parked_cli import add_parked_parser, run_parked
from eventstore.embedded.lock import DataDirLock, DataDirLocked
from eventstore.group_worker import RunnerState
from metrics.exposition import serving_metrics
from projections.status import KNOWN_PROJECTIONS
from telemetry import tracing

if TYPE_CHECKING:
    from strawberry.schema.base import BaseSchema

    from eventstore.port import EventStore

PROJECTIONS = KNOWN_PROJECTIONS
"""The projections `orders rebuild` knows."""

logger = logging.getLogger(__name__)

HEALTH_INTERVAL = 5.0
"""Seconds between touches of HEALTH_FILE while `orders project` is healthy."""


def build_parser() -> argparse.ArgumentParser:
    """The `orders` command line (public: a compose-file test checks its commands against it)."""
    parser = argparse.ArgumentParser(prog="orders", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the API and the projectors (the default)")
    serve_cmd.add_argument(
        "--no-projectors",
        action="store_true",
        help="do not run projector workers in this process (`orders project` runs them)",
    )
    project = commands.add_parser(
        "project",
        help="run projector workers only (ESDB_URL or DATABASE_URL must be set)",
    )
    project.add_argument("--workers", type=int, default=1, help="workers sharing the group")
    rebuild = commands.add_parser(
        "rebuild", help="rebuild a projection's views beside the serving ones, then switch"
    )
    rebuild.add_argument("projection", help=f"the projection: {', '.join(PROJECTIONS)}")
    demo = commands.add_parser("demo", help="place a realistic batch of orders through the API")
    demo.add_argument(
        "--url",
        default=None,
        help="the API's base URL or its /graphql endpoint (default http://HOST:PORT)",
    )
    demo.add_argument(
        "--token",
        default=None,
        help="a staff bearer token for that server, e.g. the one `orders serve` prints "
        "(default: one signed with JWT_SECRET)",
    )
    demo.add_argument("--count", type=int, default=200, help="orders to place (default 200)")
    token = commands.add_parser("token", help="print a signed token (uses JWT_SECRET)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", required=True, help="the subject: a customerId or a staff name")
    token.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help="seconds (default 3600, at most MAX_TOKEN_TTL)"
    )
    commands.add_parser("schema", help="print the GraphQL SDL (> schema.graphql)")
    relay = commands.add_parser("relay", help="relay the order events to a message broker")
    relay_targets = relay.add_subparsers(dest="target", required=True)
    kafka = relay_targets.add_parser(
        "kafka", help="publish the order events to KAFKA_TOPIC (KAFKA_BOOTSTRAP_SERVERS)"
    )
    kafka.add_argument("--workers", type=int, default=1, help="workers sharing the group")
    add_parked_parser(commands)
    return parser


def serve(
    settings: Settings,
    *,
    projectors: int = 1,
    metrics_port: int | None = None,
    schema: BaseSchema | None = None,
) -> None:
    """Run the API with uvicorn on HOST:PORT (uvloop, httptools, no access log), with the
    connection limits of `settings`, and a SHUTDOWN_GRACE after SIGTERM (`api.http.shutdown`);
    the metrics on `metrics_port` too, when given. `schema` replaces the public one (the write
    benchmark's no-op baseline, `scripts.baseline`, is served this way, on the same stack)."""
    import uvicorn

    from api.http.protocol import uvicorn_limits
    from api.http.shutdown import DRAIN_TIMEOUT, Drain, DrainingServer
    from api.wiring.app import create_app

    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.secret_warnings():
        logger.warning("event=weak_secret detail=%r", warning)
    tracing.start("orders-api")
    drain = Drain()
    config = uvicorn.Config(
        create_app(settings, schema, projectors=projectors, tune_gc=True, drain=drain),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with read timeouts and the connection cap (api.http.protocol)
        **uvicorn_limits(settings.connection_limits),
        access_log=False,  # the request log (api.http.request_log) says more
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="on",
        # The websocket library's own frame limit, so an oversized message is never buffered.
        ws_max_size=settings.request_limits.max_ws_message_bytes,
        # GraphQL messages are a few hundred bytes: compressing them saves little on the wire,
        # while each connection's zlib state costs ~40 KiB and every push a compression.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=DRAIN_TIMEOUT,
    )
    # uvicorn re-raises the stop signal once it has shut down (so SIGTERM ends the process as
    # a SIGTERM does); SIGINT's comes back as KeyboardInterrupt, a clean stop, as uvicorn.run
    # treats it.
    try:
        with contextlib.suppress(KeyboardInterrupt), serving_metrics(settings.host, metrics_port):
            DrainingServer(config, drain, settings.shutdown_grace).run()
    finally:
        tracing.stop()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _until_stopped(
    stop: asyncio.Event, health_file: Path | None, healthy: Callable[[], bool]
) -> None:
    """Wait for `stop`, touching `health_file` (the compose health check) every HEALTH_INTERVAL
    seconds while `healthy()` says the workers run."""
    touched = float("-inf")
    while not stop.is_set():
        now = time.monotonic()
        if health_file is not None and healthy() and now - touched >= HEALTH_INTERVAL:
            await asyncio.to_thread(health_file.touch)
            touched = now
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stop.wait()


async def project(
    settings: Settings, *, workers: int, health_file: Path | None, metrics_port: int | None = None
) -> int:
    """Run `workers` projector workers against EventStoreDB or PostgreSQL until SIGINT or
    SIGTERM, with the metrics on `metrics_port` (HOST) when given."""
    if settings.store_kind == "embedded":
        holder = _data_dir_holder(settings)
        if holder is not None:
            sys.stderr.write(f"orders project: {holder}\n")
            return 2
        sys.stderr.write(
            "orders project: the embedded event store keeps its persistent subscriptions inside "
            "the serving process, so its projectors run there (`orders serve`). Set ESDB_URL "
            "(EventStoreDB) or DATABASE_URL (PostgreSQL) to run projector workers on their own.\n"
        )
        return 2
    if workers < 1:
        sys.stderr.write("orders project: --workers must be at least 1\n")
        return 2
    from api.wiring.bootstrap import open_store_when_up
    from projections.pool import ProjectorPool
    from projections.redis_store import RedisViewStore
    from projections.service import open_redis

    stop = asyncio.Event()
    _stop_on_signals(stop)
    tracing.start("orders-projector")
    with serving_metrics(settings.host, metrics_port):
        store = await open_store_when_up(settings, stop)  # a store down at start is waited for
        if store is None:
            return 0
        try:
            async with (
                open_redis(settings.redis_url, settings.data_dir) as redis,
                ProjectorPool(store, RedisViewStore(redis), workers=workers) as pool,
            ):
                await _until_stopped(stop, health_file, lambda: pool.healthy)
        finally:
            await store.close()
            tracing.stop()
    return 0


def _data_dir_holder(settings: Settings) -> str | None:
    """Why DATA_DIR is taken (naming the process that has it), or None when it is free."""
    if not settings.data_dir.is_dir():
        return None
    try:
        DataDirLock.acquire(settings.data_dir).release()
    except DataDirLocked as error:
        return str(error)
    return None


async def rebuild(settings: Settings, projection: str) -> int:
    """Rebuild `projection` into a fresh namespace while the old one serves, then switch."""
    if projection not in PROJECTIONS:
        sys.stderr.write(
            f"orders rebuild: unknown projection {projection!r}; known: {', '.join(PROJECTIONS)}\n"
        )
        return 2
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from api.wiring.bootstrap import open_store
    from eventstore.embedded import SQLiteEventStore
    from eventstore.port import StoreUnavailable
    from projections.rebuild import RebuildInProgress
    from projections.rebuild import rebuild as rebuild_views
    from projections.redis_store import RedisViewStore
    from projections.service import open_redis

    store: EventStore
    if settings.store_kind == "embedded":
        # Only reads the log: beside the serving process (which holds DATA_DIR's lock) this is
        # a second reader of the same SQLite file (WAL), and the views live in the same Redis
        # (REDIS_URL or DATA_DIR/redis.sock).
        try:
            store = await SQLiteEventStore.open(settings.data_dir, read_only=True)
        except StoreUnavailable as error:
            sys.stderr.write(f"orders rebuild: {error} (check DATA_DIR)\n")
            return 2
    else:
        store = await open_store(settings)
    try:
        async with open_redis(settings.redis_url, settings.data_dir) as redis:
            columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*Progress.get_default_columns()[:1], *columns) as bar:
                task = bar.add_task(f"rebuilding {projection}", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    result = await rebuild_views(store, RedisViewStore(redis), progress=progress)
                except RebuildInProgress as error:
                    sys.stderr.write(f"orders rebuild: {error}\n")
                    return 1
    finally:
        await store.close()
    sys.stdout.write(
        f"rebuilt {projection}: {result.events} events into {result.namespace} in "
        f"{result.seconds:.1f} s (replaced {result.old_namespace or 'nothing'}, "
        f"dropped {result.dropped_keys} keys)\n"
    )
    return 0


async def relay_kafka(
    settings: Settings, *, workers: int, health_file: Path | None, metrics_port: int | None = None
) -> int:
    """Run `workers` Kafka relay workers against EventStoreDB or PostgreSQL until SIGINT or
    SIGTERM, with the metrics on `metrics_port` (HOST) when given."""
    kafka = settings.kafka
    if kafka is None:
        sys.stderr.write("orders relay kafka: set KAFKA_BOOTSTRAP_SERVERS\n")
        return 2
    if settings.store_kind == "embedded":
        sys.stderr.write(
            "orders relay kafka: the embedded event store keeps its persistent subscriptions "
            "inside the serving process, so its relay runs there (`orders serve` with "
            "KAFKA_BOOTSTRAP_SERVERS set). Set ESDB_URL or DATABASE_URL to run it on its own.\n"
        )
        return 2
    if workers < 1:
        sys.stderr.write("orders relay kafka: --workers must be at least 1\n")
        return 2
    from api.wiring.bootstrap import open_store_when_up
    from relay.main import running_relays

    stop = asyncio.Event()
    _stop_on_signals(stop)
    with serving_metrics(settings.host, metrics_port):
        store = await open_store_when_up(settings, stop)  # a store down at start is waited for
        if store is None:
            return 0
        try:
            async with running_relays(store, kafka, workers=workers) as relays:
                await _until_stopped(
                    stop, health_file, lambda: all(r.state is RunnerState.RUNNING for r in relays)
                )
        finally:
            await store.close()
    return 0


def print_schema() -> None:
    """Print the public schema's SDL."""
    from strawberry.printer import print_schema as to_sdl

    from api.graphql.schema import build_schema

    sys.stdout.write(to_sdl(build_schema()) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orders` console script and `python -m api`."""
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = Settings.from_env()
        if command == "serve":
            settings.check_can_serve()
    except SettingsError as error:
        sys.stderr.write(f"orders {command}: {error}\n")
        return 2
    if command == "serve":
        return serve_command(settings, no_projectors=getattr(args, "no_projectors", False))
    if command == "token":
        return token_command(settings, args)
    if command == "schema":
        print_schema()
        return 0
    configure_logging(settings.log_level, settings.log_format)
    if command == "project":
        health = settings.health_file
        return asyncio.run(
            project(
                settings,
                workers=args.workers,
                health_file=health,
                metrics_port=settings.metrics_port,
            )
        )
    if command == "rebuild":
        return asyncio.run(rebuild(settings, args.projection))
    if command == "parked":
        return asyncio.run(run_parked(settings, args))
    if command == "relay":
        health = settings.health_file
        return asyncio.run(
            relay_kafka(
                settings,
                workers=args.workers,
                health_file=health,
                metrics_port=settings.metrics_port,
            )
        )
    return demo(settings, url=args.url, token=args.token, count=args.count)


def serve_command(settings: Settings, *, no_projectors: bool) -> int:
    """`orders serve`: the embedded store's DATA_DIR lock first, then the server."""
    with contextlib.ExitStack() as held:
        if settings.store_kind == "embedded":
            # Taken before anything starts and held until the process ends, so a second
            # process is told at once, in one line, instead of failing inside the server.
            try:
                held.enter_context(DataDirLock.acquire(settings.data_dir))
            except DataDirLocked as error:
                sys.stderr.write(f"orders serve: {error}\n")
                return 2
        serve(settings, projectors=0 if no_projectors else 1, metrics_port=settings.metrics_port)
    return 0


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    """`orders token`: a staff or customer token signed with JWT_SECRET."""
    if settings.identity_provider is not None:
        sys.stderr.write(
            "orders token: JWT_ISSUER is set, so the server takes only the identity "
            "provider's tokens: ask the provider for one.\n"
        )
        return 2
    if settings.jwt_secret_generated:
        sys.stderr.write("JWT_SECRET is not set: a token would match no server.\n")
        return 2
    if not 1 <= args.ttl <= settings.max_token_ttl:
        sys.stderr.write(
            f"orders token: --ttl must be 1 to {settings.max_token_ttl} seconds "
            f"(MAX_TOKEN_TTL: the server refuses tokens that live longer), got {args.ttl}\n"
        )
        return 2
    authenticator = Authenticator(settings.jwt_secret, max_ttl=settings.max_token_ttl)
    sys.stdout.write(authenticator.issue(sub=args.sub, role=args.role, ttl=args.ttl) + "\n")
    return 0


def demo(settings: Settings, *, url: str | None, token: str | None, count: int) -> int:
    """`orders demo`: as staff with `token`, or with one signed by JWT_SECRET when none is given."""
    from api.wiring.demo import graphql_endpoint, run_demo

    if token is None:
        if settings.identity_provider is not None:
            sys.stderr.write(
                "orders demo: JWT_ISSUER is set, so the server takes only the identity "
                "provider's tokens: pass --token with a staff token from the provider.\n"
            )
            return 2
        if settings.jwt_secret_generated:
            sys.stderr.write(
                "orders demo: pass --token with a staff token for the server (`orders serve` "
                "prints one at start: event=ready_token role=staff), or set JWT_SECRET to the "
                "server's secret.\n"
            )
            return 2
        token = Authenticator(settings.jwt_secret).issue(sub="demo", role="staff", ttl=3600)
    url = url or f"http://{settings.host}:{settings.port}"
    try:
        graphql_endpoint(url)
    except ValueError as error:
        sys.stderr.write(f"orders demo: {error}\n")
        return 2
    return asyncio.run(run_demo(url=url, count=count, token=token))


if __name__ == "__main__":
    sys.exit(main())
