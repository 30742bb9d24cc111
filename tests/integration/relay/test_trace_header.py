"""The relay carries a command's trace to Kafka: the `$traceparent` of an event's metadata is its
message's `traceparent` header, so a consumer's spans join the trace of the command that wrote
the event. An event written without one (tracing off) has no such header."""

from __future__ import annotations

import uuid
from dataclasses import replace

from application.codec import encode
from domain.events import order_stream
from eventstore.port import NO_STREAM, StoreWithGroups
from relay.config import KafkaSettings
from relay.main import running_relays
from tests.integration.relay.topic import CONTEXT, lifecycle, read_topic

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_traced_event_is_published_with_its_traceparent_header(
    store: StoreWithGroups, kafka: KafkaSettings
) -> None:
    traced_id, plain_id = f"traced-{uuid.uuid4().hex[:6]}", f"plain-{uuid.uuid4().hex[:6]}"
    traced = replace(CONTEXT, traceparent=TRACEPARENT)
    for order_id, context in ((traced_id, traced), (plain_id, CONTEXT)):
        placed = lifecycle(order_id, 1)[0]
        await store.append(
            order_stream(order_id), [encode(placed, context, uuid.uuid4())], NO_STREAM
        )
    async with running_relays(store, kafka):
        records = await read_topic(kafka, at_least=2)

    by_key = {record.key: record for record in records}
    assert by_key[traced_id].headers["traceparent"] == TRACEPARENT
    assert by_key[traced_id].value["metadata"]["$traceparent"] == TRACEPARENT
    assert "traceparent" not in by_key[plain_id].headers
