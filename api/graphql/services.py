"""What a process serves requests with, as types only: the request context, the GraphQL view and
the health and metrics pages read these, while `api.wiring.bootstrap` (the composition root) builds
them.

Kept apart from the root so that a resolver importing its context does not import the wiring (the
stores, the read side's opening, the relay) along with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from api.http.auth import Authenticator
from api.settings.config import Settings
from application.handler import CommandHandler
from application.repository import OrderRepository
from application.snapshot_taker import Snapshotter
from eventstore.group_worker import RunnerState
from eventstore.port import EventStore
from projections.service import ReadSide


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
