"""`python -m tests.support.esdb_server --port N --data-dir DIR`: serve until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from .server import open_server

logger = logging.getLogger(__name__)


async def _serve(host: str, port: int, data_dir: Path) -> None:
    server = await open_server(data_dir, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info("event=esdb_test_server_serving url=%s data_dir=%s", server.url, data_dir)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await server.store.close()


def main(argv: list[str] | None = None) -> None:
    """Parses arguments and serves."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.esdb_server",
        description="An EventStoreDB 24.x-compatible gRPC server over the embedded store (tests).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2113)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.data_dir))


if __name__ == "__main__":
    main()
