"""An example downstream service: keeps stock reservations per product from the `order-events`
Kafka topic the orders relay publishes. It shares no code with the orders service: it knows the
topic's format only (CONTRACT section 1 inside the relay's envelope)."""
