"""The composition root: builds the clients once, hands them down, closes them at the end."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from api.auth import Authenticator
from api.config import Settings
from application.handler import CommandHandler
from application.idempotency import IdempotencyIds
from application.idempotency_secret import load_idempotency_ids
from application.recent_orders import RecentOrders
from application.repository import OrderRepository
from application.snapshot import SnapshotPolicy
from application.snapshots import SnapshotStore
from application.snapshotter import Snapshotter
from eventstore.port import EventStore, StoreWithGroups
from projections.service import ReadSide, open_read_side
from projections.views import RunnerState
from relay.config import KafkaSettings
from relay.main import running_relays

logger = logging.getLogger(__name__)


class Worker(Protocol):
    """What /healthz reads of a background worker run by this process (a Kafka relay's)."""

    @property
    def state(self) -> RunnerState: ...

    @property
    def last_error(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Everything a request may use, built once per process."""

    settings: Settings
    store: EventStore
    repository: OrderRepository
    handler: CommandHandler
    authenticator: Authenticator
    snapshotter: Snapshotter
    read_side: ReadSide
    relays: list[Worker] = field(default_factory=list)  # the Kafka relays this process runs


async def open_store(settings: Settings) -> StoreWithGroups:
    """EventStoreDB when `ESDB_URL` is set, PostgreSQL when `DATABASE_URL` is, else the embedded
    SQLite store under `DATA_DIR`. Both URLs at once is refused: no store silently wins."""
    if settings.esdb_url and settings.database_url:
        raise ValueError("ESDB_URL and DATABASE_URL are both set: set only one")
    if settings.database_url:
        from eventstore.postgres import PostgresEventStore

        postgres = await PostgresEventStore.open(settings.database_url)
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
        store: StoreWithGroups = await EventStoreDBStore.connect(settings.esdb_url)
        logger.info("event=store_opened kind=eventstoredb")
        return store
    from eventstore.embedded import SQLiteEventStore

    embedded = await SQLiteEventStore.open(settings.data_dir)
    logger.info("event=store_opened kind=embedded data_dir=%s", settings.data_dir)
    return embedded


def build_services(
    settings: Settings, store: EventStore, read_side: ReadSide, ids: IdempotencyIds | None = None
) -> Services:
    """Wire the application around an open store and read side; `ids` derives the ids of keyed
    placements under the deployment's secret."""
    snapshots = SnapshotStore(store)
    repository = OrderRepository(store, snapshots)
    snapshotter = Snapshotter(repository, snapshots, SnapshotPolicy(every=settings.snapshot_every))
    return Services(
        settings=settings,
        store=store,
        repository=repository,
        handler=CommandHandler(store, RecentOrders(repository), snapshotter=snapshotter, ids=ids),
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
    elsewhere). Closed in reverse: snapshots in flight, projectors and feed, Redis, the store."""
    store = await open_store(settings)
    try:
        ids = await load_idempotency_ids(store, settings.idempotency_secret)
        async with open_read_side(
            store,
            redis_url=settings.redis_url,
            data_dir=settings.data_dir,
            projectors=projectors,
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
