"""Persistent subscriptions of the embedded store: the shared engine (`eventstore.persistent`)
over group state kept in tables of the store's SQLite file (`persistent_tables`)."""

from __future__ import annotations

from pathlib import Path

from eventstore.embedded.persistent_tables import SQLiteGroupStorage
from eventstore.persistent.groups import PersistentGroups
from eventstore.port import EventStore


class EmbeddedPersistentSubscriptions(PersistentGroups):
    """Every persistent-subscription group of one embedded store; `db_path` is the store's
    SQLite file, where a connection of our own keeps our own tables."""

    def __init__(self, store: EventStore, db_path: Path) -> None:
        super().__init__(store, SQLiteGroupStorage(db_path))
