"""The orders application (the service layer): the command handler, idempotency keys, the
repository of orders (snapshot plus tail, upcasting), snapshots and the wire codec of order events.

It joins the pure domain to the generic event store; the API calls it and the projectors decode
events with its codec.
"""
