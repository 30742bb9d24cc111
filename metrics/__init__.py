"""Prometheus metrics of every process (`orders serve`, `orders project`, `orders relay kafka`):
the instruments (`metrics.instruments`), the bounded operation names they are labelled with
(`metrics.operations`) and their exposition (`metrics.exposition`: `/metrics` and METRICS_PORT).

A package of its own, below `api/`, so the store adapters, the projector and the relay can count
without importing the web layer."""
