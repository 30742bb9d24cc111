"""On the embedded store the relay runs inside `orders serve` when KAFKA_BOOTSTRAP_SERVERS is set
(the store's persistent-subscription groups live in the serving process): orders placed through
the API reach the topic, and /healthz reports the relay."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from relay.config import KafkaSettings
from tests.e2e.gql import GraphQLClient, Orders, accepted, item, make_token, new_id
from tests.integration.relay.topic import read_topic
from tests.support.processes import ServerProcess


async def test_orders_serve_relays_the_embedded_store(kafka: KafkaSettings, tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(32)
    server = ServerProcess(
        data_dir=tmp_path / "data",
        jwt_secret=secret,
        log_path=tmp_path / "server.log",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_TOPIC": kafka.topic,
            "KAFKA_IDEMPOTENT": "false",
            "KAFKA_PARTITIONS": str(kafka.partitions),
        },
    )
    with server:
        token = make_token(secret, sub="staff", role="staff")
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
            orders = Orders(GraphQLClient(http, token))
            order_ids = [new_id("served") for _ in range(5)]
            for order_id in order_ids:
                accepted(await orders.place(order_id, items=[item("p-7", qty=2)]))
                accepted(await orders.command("cancelOrder", orderId=order_id, reason="test"))
            health = await http.get("/healthz", headers={"Authorization": f"Bearer {token}"})
        records = await read_topic(kafka, at_least=10)
    assert health.status_code == 200
    assert health.json()["relay"] == "ok"  # the relay running here is one of the parts
    published = [(r.key, r.headers["event-type"]) for r in records]
    for order_id in order_ids:
        mine = [kind for key, kind in published if key == order_id]
        assert mine == ["OrderPlaced", "OrderCancelled"]
    placed = next(r for r in records if r.key == order_ids[0])
    assert placed.value["data"]["items"] == [
        {"id": "p-7", "name": "Widget", "price": "10.00", "qty": 2}
    ]
