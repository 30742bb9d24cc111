"""The broker goes away and comes back: the relay reports the error, keeps what it had not
published unacked, and publishes it once a broker answers again (here a new, empty Tansu on the
same address: its memory engine keeps nothing across a restart)."""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

from eventstore.group_worker import RunnerState
from eventstore.port import StoreWithGroups
from relay.config import KafkaSettings
from relay.main import running_relays
from relay.worker import RelaySettings
from tests.integration.relay.topic import eventually, order_log, read_topic, write_orders
from tests.support.kafka_broker import running_tansu


async def test_events_written_while_the_broker_is_down_are_published_when_it_is_back(
    store: StoreWithGroups, tmp_path: Path
) -> None:
    with ExitStack() as first_broker, ExitStack() as second_broker:
        bootstrap = first_broker.enter_context(running_tansu(tmp_path))
        kafka = KafkaSettings(
            bootstrap_servers=bootstrap,
            topic=f"outage-{uuid.uuid4().hex[:8]}",
            idempotent=False,
            partitions=2,
            request_timeout_ms=2000,
        )
        async with running_relays(store, kafka, settings=RelaySettings(backoff_max=0.5)) as relays:
            (relay,) = relays
            await write_orders(store, 5, tag="before")
            before = await order_log(store)
            await read_topic(kafka, at_least=len(before))

            async def all_acked() -> bool:
                return relay.published == len(before)

            await eventually(all_acked)
            first_broker.close()  # the broker goes away; orders keep coming meanwhile
            await write_orders(store, 5, tag="during")

            async def failing() -> bool:
                return relay.state is RunnerState.ERROR

            await eventually(failing)
            assert relay.published == len(before)  # nothing acked without the broker
            port = int(bootstrap.rsplit(":", 1)[1])
            second_broker.enter_context(running_tansu(tmp_path, port))
            everything = await order_log(store)
            during = {str(e.id) for e in everything} - {str(e.id) for e in before}
            records = await read_topic(kafka, at_least=len(during), within=60)

            async def caught_up() -> bool:
                return relay.published >= len(everything) and relay.state is RunnerState.RUNNING

            await eventually(caught_up, within=60)
    # the new broker has what the relay had not published, and nothing it had
    assert {r.event_id for r in records} == during
