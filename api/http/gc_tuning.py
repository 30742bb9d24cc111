"""Garbage-collector settings for a long-running server process.

Under load the cyclic collector was the largest single cost a command added over the no-op
baseline (~0.25 ms of CPU per command): every request allocates a few hundred container objects,
so generation 0 filled every few requests, and each full collection walked the whole heap
(strawberry's and graphql-core's schema, the recent-orders cache, the clients) although none of
it is ever garbage. Objects are still freed by reference counting the moment they are unused;
the collector only exists for reference cycles, which are rare on the request path.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

THRESHOLDS = (20_000, 20, 50)
"""Generation 0 is collected after this many net container allocations (CPython's default is
700: under load that was a collection every couple of requests), the older generations after
this many collections of the younger one."""


def tune_for_serving() -> None:
    """Call once the process has built its long-lived objects (after startup): moves them out of
    the collector's sight (`gc.freeze`) and collects young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    logger.info("event=gc_tuned frozen=%d thresholds=%s", gc.get_freeze_count(), THRESHOLDS)
