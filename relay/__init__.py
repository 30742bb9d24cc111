"""Relays the order events from the log to Kafka (`orders relay kafka`): the log is the source of
truth and the topic a copy of it, so no write path has to publish and nothing is dual-written."""
