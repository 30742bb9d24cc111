"""The composition root: builds the clients once, hands them down, closes them at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.graphql.services import Services
from api.http.auth import Authenticator
from api.settings.config import Settings
from application.handler import CommandHandler
from application.idempotency import IdempotencyIds
from application.idempotency_secret import load_idempotency_ids
from application.recent_orders import RecentOrders
from application.repository import OrderRepository, Orders
from application.snapshot_policy import SnapshotPolicy
from application.snapshot_store import SnapshotStore
from application.snapshot_taker import Snapshotter
from eventstore.outage_log import OUTAGES
from eventstore.port import EventStore, StoreUnavailable, StoreWithGroups
from projections.service import ReadSide, open_read_side
from relay.config import KafkaSettings
from relay.main import running_relays

logger = logging.getLogger(__name__)


async def open_store(settings: Settings) -> StoreWithGroups:
    """EventStoreDB when `ESDB_URL` is set, PostgreSQL when `DATABASE_URL` is, else the embedded
    SQLite store under `DATA_DIR` (`Settings` refuses both URLs at once: no store silently wins)."""
    if settings.database_url:
        from eventstore.postgres import PostgresEventStore

        postgres = await PostgresEventStore.open(settings.database_url)
        postgres.call_timeout = settings.store_timeout
        logger.info("event=store_opened kind=postgres")
        return postgres
    if settings.esdb_url:
        try:
            # Imported lazily: the embedded default must not need gRPC at all.
            from eventstore.esdb import EventStoreDBStore
        except ImportError as error:
            raise RuntimeError(
                "ESDB_URL is set but the EventStoreDB adapter (eventstore.esdb) is not available"
            ) from error
        esdb = await EventStoreDBStore.connect(settings.esdb_url)
        esdb.call_timeout = settings.store_timeout
        logger.info("event=store_opened kind=eventstoredb")
        return esdb
    from eventstore.embedded import SQLiteEventStore

    embedded = await SQLiteEventStore.open(settings.data_dir)
    embedded.call_timeout = settings.store_timeout
    logger.info("event=store_opened kind=embedded data_dir=%s", settings.data_dir)
    return embedded


STORE_RETRY_EVERY = 1.0
"""Seconds between two attempts to open an event store that is down at start."""


async def open_store_when_up(
    settings: Settings, stop: asyncio.Event | None = None
) -> StoreWithGroups | None:
    """`open_store`, waiting while the store is down (unreachable, restarting, out of
    connections): one line when the wait begins, one when it ends (`eventstore.outage_log`),
    no exit. None when `stop` is set first."""
    stopped = stop if stop is not None else asyncio.Event()
    while True:
        try:
            store = await open_store(settings)
        except (StoreUnavailable, OSError) as error:
            OUTAGES.failed("eventStore", error, at="start", retrying="yes")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STORE_RETRY_EVERY):
                    await stopped.wait()
            if stopped.is_set():
                return None
            continue
        OUTAGES.recovered("eventStore")
        return store


def build_services(
    settings: Settings, store: EventStore, read_side: ReadSide, ids: IdempotencyIds | None = None
) -> Services:
    """Wire the application around an open store and read side; `ids` derives the ids of keyed
    placements under the deployment's secret."""
    snapshots = SnapshotStore(store)
    repository = OrderRepository(store, snapshots)
    snapshotter = Snapshotter(repository, snapshots, SnapshotPolicy(every=settings.snapshot_every))
    # Only the embedded store has one writing process (its DATA_DIR lock), the condition of
    # deciding on remembered orders (`application.recent_orders`).
    sole_writer = not (settings.esdb_url or settings.database_url)
    orders: Orders = RecentOrders(repository) if sole_writer else repository
    return Services(
        settings=settings,
        store=store,
        repository=repository,
        handler=CommandHandler(store, orders, snapshotter=snapshotter, ids=ids),
        authenticator=Authenticator(
            settings.jwt_secret,
            max_ttl=settings.max_token_ttl,
            provider=settings.identity_provider,
        ),
        snapshotter=snapshotter,
        read_side=read_side,
    )


@asynccontextmanager
async def open_services(settings: Settings, *, projectors: int = 1) -> AsyncIterator[Services]:
    """The services for one process's lifetime: the store, then the read side on it (Redis, the
    live feed and `projectors` in-process projector workers; 0 when `orders project` runs them
    elsewhere). Closed in reverse: snapshots in flight, projectors and feed, Redis, the store.
    A store that is down at start is waited for (`open_store_when_up`)."""
    store = await open_store_when_up(settings)
    assert store is not None  # without a stop event it waits for good
    try:
        ids = await load_idempotency_ids(store, settings.idempotency_secret)
        async with open_read_side(
            store,
            redis_url=settings.redis_url,
            data_dir=settings.data_dir,
            projectors=projectors,
            redis_timeout=settings.redis_timeout,
        ) as read_side:
            logger.info(
                "event=read_side_opened redis=%s projectors=%d",
                "url" if settings.redis_url else "embedded",
                projectors,
            )
            services = build_services(settings, store, read_side, ids)
            if settings.prints_ready_tokens:
                log_ready_tokens(services.authenticator)
            try:
                async with running_relays(store, _in_process_relay(settings)) as relays:
                    services.relays.extend(relays)
                    yield services
            finally:
                # Snapshots in flight write to the store: let them finish (briefly) first.
                await services.snapshotter.close()
        logger.info("event=read_side_closed")
    finally:
        await store.close()
        logger.info("event=store_closed")


def _in_process_relay(settings: Settings) -> KafkaSettings | None:
    """The embedded store's persistent-subscription groups live in this process, so its Kafka
    relay runs here when KAFKA_BOOTSTRAP_SERVERS is set; other stores run `orders relay kafka`."""
    return settings.kafka if settings.store_kind == "embedded" else None


def log_ready_tokens(authenticator: Authenticator) -> None:
    """Without JWT_SECRET (on loopback) the secret is random for this run: log tokens a newcomer
    can paste."""
    ttl = min(24 * 3600, authenticator.max_ttl)
    staff = authenticator.issue(sub="staff", role="staff", ttl=ttl)
    customer = authenticator.issue(sub="customer-1", role="customer", ttl=ttl)
    logger.info("event=ready_token role=staff sub=staff token=%s", staff)
    logger.info("event=ready_token role=customer sub=customer-1 token=%s", customer)


class Startup:
    """The services of a process that binds before its dependencies answer: they open in the
    background (waiting for a store that is down), and until they are open the API answers
    UNAVAILABLE (`api.wiring.starting`). A failure that is no outage (a bad setting, a store held by
    another process) still ends the start."""

    def __init__(self, settings: Settings, *, projectors: int = 1) -> None:
        self.settings = settings
        self.projectors = projectors
        self.services: Services | None = None
        self._opened = asyncio.Event()
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                async with open_services(self.settings, projectors=self.projectors) as services:
                    self.services = services
                    self._opened.set()
                    await self._stop.wait()
                    return
            except StoreUnavailable as error:
                # A store that connects lazily (EventStoreDB) is found down by the first read.
                if self._opened.is_set():
                    raise
                OUTAGES.failed("eventStore", error, at="start", retrying="yes")
                await asyncio.sleep(STORE_RETRY_EVERY)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Startup]:
        """Open the services in the background for the block; returns at once when they open,
        or when the store is found down (then they keep opening); raises what ended them."""
        task = asyncio.create_task(self._run(), name="startup")
        opened = asyncio.create_task(self._opened.wait())
        try:
            while not (task.done() or opened.done() or OUTAGES.is_out("eventStore")):
                await asyncio.wait({task, opened}, timeout=0.05)
            if task.done():
                task.result()  # raises what ended the start
            task.add_done_callback(_log_failed_start)
            yield self
        finally:
            opened.cancel()
            self._stop.set()
            if not self._opened.is_set():
                task.cancel()  # still waiting for the store: nothing to close
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_failed_start(task: asyncio.Task[None]) -> None:
    """The services failed to open after the process bound (not an outage: those are waited
    for): said once, with the traceback; the API keeps answering UNAVAILABLE."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("event=start_failed error=%r", error, exc_info=error)
