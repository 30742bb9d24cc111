"""The event-store port and its adapters (embedded SQLite, EventStoreDB)."""
