"""The event-store port (`port`) and its adapters: embedded SQLite (`embedded`), PostgreSQL
(`postgres`) and EventStoreDB (`esdb`); `persistent` is the persistent-subscription engine the
embedded and PostgreSQL stores share."""
