"""The relay against a real Kafka-protocol broker (Tansu), on every event store: each order event
of the log reaches the topic once, keyed by order id, in order per key, as the contract's wire
format upcast to the current schema, with the identity headers; workers share the group."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import orjson
import pytest

from api.settings.config import SettingsError, kafka_settings
from application.codec import decode_record
from domain.events import order_stream
from eventstore.group_worker import RunnerState
from eventstore.port import ANY, NewEvent, RecordedEvent, StoreWithGroups
from relay.config import KafkaSettings
from relay.main import running_relays
from relay.worker import GROUP
from tests.integration.relay.topic import Published, eventually, order_log, read_topic, write_orders


def by_key(records: list[Published]) -> dict[str, list[Published]]:
    keyed: dict[str, list[Published]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        keyed[record.key].append(record)
    return keyed


async def test_every_event_reaches_the_topic_in_order_per_order(
    store: StoreWithGroups, kafka: KafkaSettings
) -> None:
    await write_orders(store, 30)
    # a legacy OrderPlaced (schema version 1) is published upcast to the current schema
    legacy_id = f"legacy-{uuid.uuid4().hex[:6]}"
    await store.append(
        order_stream(legacy_id),
        [
            NewEvent(
                id=uuid.uuid4(),
                type="OrderPlaced",
                data=b'{"customerId": "c-old", "items": ["sku-1", "sku-2"], "total": 12.5}',
                metadata=b'{"$correlationId": "legacy-corr"}',
            )
        ],
        ANY,
    )
    log = await order_log(store)
    async with running_relays(store, kafka):
        records = await read_topic(kafka, at_least=len(log))

    assert Counter(r.event_id for r in records) == Counter(str(e.id) for e in log)
    keyed = by_key(records)
    for stream, events in _streams(log).items():
        published = keyed[stream.removeprefix("order-")]
        # one partition per order, offsets in the order of the stream's versions
        assert len({r.partition for r in published}) == 1
        assert [r.headers["event-id"] for r in published] == [str(e.id) for e in events]
    by_id = {r.event_id: r for r in records}
    for event in log:
        record = by_id[str(event.id)]
        decoded = decode_record(event)
        assert record.key == decoded.record.stream.removeprefix("order-")
        assert record.headers == {
            "event-id": str(event.id),
            "event-type": event.type,
            "event-version": str(event.version),
            "event-position": str(event.position),
            "correlation-id": decoded.metadata["$correlationId"],
        }
        assert record.value == {
            "eventId": str(event.id),
            "type": event.type,
            "orderId": record.key,
            "streamId": event.stream,
            "version": event.version,
            "position": str(event.position),
            "data": orjson.loads(orjson.dumps(decoded.data)),
            "metadata": decoded.metadata,
        }
    legacy = keyed[legacy_id][0].value
    assert legacy["data"] == {
        "orderId": legacy_id,
        "customerId": "c-old",
        "items": [
            {"id": "sku-1", "name": "Unknown", "price": "0", "qty": 1},
            {"id": "sku-2", "name": "Unknown", "price": "0", "qty": 1},
        ],
        "total": "12.5",
    }
    assert legacy["metadata"]["schemaVersion"] == 2


def _streams(log: list[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    streams: dict[str, list[RecordedEvent]] = defaultdict(list)
    for event in log:
        streams[event.stream].append(event)
    return streams


async def test_events_appended_while_running_are_relayed(
    store: StoreWithGroups, kafka: KafkaSettings
) -> None:
    async with running_relays(store, kafka):
        await write_orders(store, 5)
        first = await order_log(store)
        await read_topic(kafka, at_least=len(first))
        await write_orders(store, 5)
        log = await order_log(store)
        records = await read_topic(kafka, at_least=len(log))
    assert sorted(r.event_id for r in records) == sorted(str(e.id) for e in log)


async def test_two_workers_share_the_group_and_publish_each_event_once(
    store: StoreWithGroups, kafka: KafkaSettings
) -> None:
    async with running_relays(store, kafka, workers=2) as relays:

        async def connected() -> bool:
            return all(r.state is RunnerState.RUNNING for r in relays)

        await eventually(connected, within=60)
        await write_orders(store, 60)
        log = await order_log(store)
        records = await read_topic(kafka, at_least=len(log), within=60)

        async def acked() -> bool:
            return sum(r.published for r in relays) >= len(log)

        await eventually(acked, within=60)
    # no failure happened, so at-least-once allows no duplicate at all here
    published = Counter(r.event_id for r in records)
    repeated = {event_id: n for event_id, n in published.items() if n > 1}
    assert not repeated, f"published more than once: {repeated}"
    assert set(published) == {str(e.id) for e in log}
    counts = [r.published for r in relays]
    # the group pins each order to one of the connected workers: both get some
    assert all(n > 0 for n in counts), counts
    assert sum(counts) == len(log), counts
    keyed = by_key(records)
    for stream, events in _streams(log).items():
        order = [r.event_id for r in keyed[stream.removeprefix("order-")]]
        assert order == [str(e.id) for e in events], f"{stream} out of order"


async def test_an_event_that_cannot_be_upcast_is_parked_and_the_rest_flow(
    store: StoreWithGroups, kafka: KafkaSettings
) -> None:
    await write_orders(store, 3)
    bad = f"bad-{uuid.uuid4().hex[:6]}"
    await store.append(
        order_stream(bad),
        [
            NewEvent(
                id=uuid.uuid4(),
                type="OrderPlaced",
                data=b"{}",
                metadata=b'{"schemaVersion": 99}',
            )
        ],
        ANY,
    )
    await write_orders(store, 3)
    log = [e for e in await order_log(store) if e.stream != order_stream(bad)]
    async with running_relays(store, kafka) as relays:
        records = await read_topic(kafka, at_least=len(log))

        async def parked() -> bool:
            return (await store.groups.get_subscription_info(GROUP)).parked == 1

        await eventually(parked)
    assert sorted(r.event_id for r in records) == sorted(str(e.id) for e in log)
    assert relays[0].parked == 1


def test_the_default_turns_the_idempotent_producer_on() -> None:
    settings = kafka_settings({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert settings is not None
    assert settings.topic == "order-events"
    assert settings.idempotent is True
    options = settings.producer_options()
    assert options["enable_idempotence"] is True
    assert options["acks"] == "all"
    off = kafka_settings({"KAFKA_BOOTSTRAP_SERVERS": "k:1", "KAFKA_IDEMPOTENT": "false"})
    assert off is not None
    assert off.producer_options()["enable_idempotence"] is False


def test_no_bootstrap_servers_means_no_relay() -> None:
    assert kafka_settings({}) is None


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"KAFKA_IDEMPOTENT": "maybe"}, "KAFKA_IDEMPOTENT"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_PARTITIONS": "0"}, "KAFKA_PARTITIONS"),
        ({"KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "KAFKA_SSL_CAFILE must be the path of a file"),
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        kafka_settings({"KAFKA_BOOTSTRAP_SERVERS": "k:1", **environ})


def test_sasl_reaches_the_client_options() -> None:
    settings = kafka_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:1",
            "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "relay",
            "KAFKA_SASL_PASSWORD": "secret",
        }
    )
    assert settings is not None
    options = settings.connection_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "relay"
    assert options["sasl_plain_password"] == "secret"
