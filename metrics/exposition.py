"""The metrics as Prometheus text: rendered for `/metrics`, and served on METRICS_PORT by a
small HTTP server of prometheus-client's own (a thread, apart from the event loop, so a busy
loop still answers its scrapes).

Multi-process: with PROMETHEUS_MULTIPROC_DIR set (before the process starts; prometheus-client
reads it at import), every process writes its values to files in that directory and any one of
them serves the sum of all (gauges: per their `multiprocess_mode`). Use it when several uvicorn
workers or processes share a host and one scrape should see them all; clear the directory
before starting them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)

import metrics.instruments  # noqa: F401  (registers every instrument before the first scrape)

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, when set."""
    return os.environ.get(MULTIPROC_ENV, "").strip() or None


def registry() -> CollectorRegistry:
    """This process's registry, or every process's files under PROMETHEUS_MULTIPROC_DIR."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=path)  # type: ignore[no-untyped-call]
    return collected


def render() -> bytes:
    """The current metrics in the Prometheus text format."""
    return generate_latest(registry())


@contextmanager
def serving_metrics(host: str, port: int | None) -> Iterator[None]:
    """Serve /metrics on `host`:`port` (no auth: for scrapers) while the block runs (nothing
    when `port` is None); at the end, this process's live gauges leave a multi-process sum."""
    if port is None:
        try:
            yield
        finally:
            mark_process_dead()
        return
    server, thread = start_http_server(port, addr=host, registry=registry())
    logger.info("event=metrics_serving host=%s port=%d", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        mark_process_dead()


def mark_process_dead() -> None:
    """In multi-process mode, drop this process's live gauges (connections, lag) from the sum."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


__all__ = [
    "CONTENT_TYPE",
    "mark_process_dead",
    "registry",
    "render",
    "serving_metrics",
]
