"""The Lua scripts name hash fields (and change kinds) only through the tables Python prepends:
a script naming one `projections.fields` does not define, or spelling one out itself, fails here;
and against a real Redis, every field the scripts write is one the Python owner defines."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from domain.events import OrderCancelled, OrderPlaced, OrderShipped, PaymentTaken
from projections.fields import ChangeFields, MetaFields, OrderFields, StatsFields
from projections.keys import KeyParts, NamespaceKeys, ProjectionKeys, as_text
from projections.lua_scripts import TABLES, UnknownName, script_source, unknown_names, with_names
from projections.mapping import change_of
from projections.redis_store import RedisViewStore
from tests.integration.projections.factories import item
from tests.integration.projections.test_apply_script import sample_log

SCRIPTS = sorted(
    entry.name
    for entry in resources.files("projections.lua").iterdir()
    if entry.name.endswith(".lua")
)
_LITERAL = re.compile(r"'([^']*)'|\"([^\"]*)\"")
OWNED = {
    value
    for table in ("ORDER", "STATS", "META", "CHANGE", "KIND", "KEY")
    for value in TABLES[table].values()
    if any(c.isalpha() for c in value)
}


def _code(source: str) -> str:
    """`source` without its comments (none of its strings hold `--`)."""
    return "\n".join(line.split("--", 1)[0] for line in source.splitlines())


def _owned(owner: type) -> set[str]:
    return {v for k, v in vars(owner).items() if k.isupper() and isinstance(v, str)}


def test_the_scripts_are_found() -> None:
    assert {"apply.lua", "ensure_namespace.lua", "switch.lua", "watermark.lua"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_name_a_script_uses_is_defined(name: str) -> None:
    source = resources.files("projections.lua").joinpath(name).read_text("utf-8")
    assert unknown_names(source) == []
    assert script_source(name).endswith(source)


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_script_spells_a_field_name_itself(name: str) -> None:
    code = _code(resources.files("projections.lua").joinpath(name).read_text("utf-8"))
    spelled = {a or b for a, b in _LITERAL.findall(code)} & OWNED
    assert spelled == set(), f"{name} spells {sorted(spelled)}: use the preamble's tables"


def test_a_name_the_owner_does_not_define_is_refused() -> None:
    source = "redis.call('HSET', KEYS[1], ORDER.version, 1, ORDER.colour, 'red', META.ready, 1)"
    assert unknown_names(source) == ["ORDER.colour"]
    with pytest.raises(UnknownName, match=r"ORDER\.colour"):
        with_names("paint.lua", source)


def test_the_preamble_holds_each_owner_s_names() -> None:
    assert TABLES["ORDER"]["placed_position"] == OrderFields.PLACED_POSITION
    assert TABLES["STATS"]["revenue_prefix"] == StatsFields.REVENUE_PREFIX
    assert TABLES["META"]["watermark"] == MetaFields.WATERMARK
    assert TABLES["CHANGE"]["customer_id"] == ChangeFields.CUSTOMER_ID
    assert TABLES["KIND"]["placed"] == "placed"
    assert TABLES["KEY"]["customer_status_index"] == KeyParts.CUSTOMER_STATUS_INDEX


async def test_every_field_the_scripts_write_is_owned_by_python(redis: Redis, prefix: str) -> None:
    views = RedisViewStore(redis, prefix=prefix)
    ns, _ = await views.ensure_namespace()
    log = sample_log()  # placed, add, paid, cancelled, shipped
    log.record(
        "c",
        OrderPlaced(order_id="c", customer_id="c3", items=(item("p1"),), total=Decimal("10.00")),
    )
    log.record("c", PaymentTaken(amount=Decimal("10.00"), method="card", transaction_id="t"))
    log.record("c", OrderShipped(tracking_id="T", carrier="UPS"))
    log.record("d", OrderPlaced(order_id="d", customer_id="c3", items=(), total=Decimal("0.00")))
    log.record("d", OrderCancelled(reason="none"))
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(NamespaceKeys(ns).changes)
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        changes = [change_of(d) for d in log.decoded()]
        # The first change was applied by a traced projector: its message carries its span.
        traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        await views.apply_batch(changes, traceparents=[traced] + [""] * (len(changes) - 1))
        messages: list[dict[str, Any]] = []
        while len(messages) < len(changes):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert message is not None, f"only {len(messages)} of {len(changes)} published"
            messages.append(orjson.loads(message["data"]))
    await views.raise_watermark(log.next_position, mark_ready=True)
    keys = NamespaceKeys(ns)

    written: set[str] = set()
    for order_id in "abcd":
        fields = {as_text(k) for k in await redis.hkeys(keys.order(order_id))}
        assert fields <= _owned(OrderFields)
        written |= fields
    assert written == _owned(OrderFields)  # every field is written by some change
    assert {as_text(k) for k in await redis.hkeys(keys.meta)} == _owned(MetaFields)
    for field in (as_text(k) for k in await redis.hkeys(keys.stats)):
        assert field in (StatsFields.ORDERS, StatsFields.POSITION) or field.startswith(
            (StatsFields.COUNT_PREFIX, StatsFields.REVENUE_PREFIX)
        ), field
    published: set[str] = set()
    for message in messages:
        assert set(message) <= _owned(ChangeFields)
        assert set(message[ChangeFields.VIEW]) <= _owned(OrderFields)
        published |= set(message)
        # A placement has no status before it; every other change names the one it left.
        placed = message[ChangeFields.VERSION] == 1
        assert (ChangeFields.PREVIOUS_STATUS not in message) == placed, message
    assert published == _owned(ChangeFields)  # every field is published by some change
    assert [m.get(ChangeFields.TRACEPARENT) for m in messages] == [traced] + [None] * (
        len(messages) - 1
    )
    shipped = messages[changes.index(next(c for c in changes if c.tracking_id == "T"))]
    assert (shipped[ChangeFields.PREVIOUS_STATUS], shipped[ChangeFields.STATUS]) == (
        "PAID",
        "SHIPPED",
    )

    # Every key the scripts made is one `NamespaceKeys` names.
    expected = {keys.meta, keys.stats, keys.all_index}
    for order_id, customer, status in (
        ("a", "c1", "SHIPPED"),
        ("b", "c2", "CANCELLED"),
        ("c", "c3", "SHIPPED"),
        ("d", "c3", "CANCELLED"),
    ):
        expected |= {
            keys.order(order_id),
            keys.customer_index(customer),
            keys.status_index(status),
            keys.customer_status_index(customer, status),
        }
    made = {as_text(k) async for k in redis.scan_iter(match=f"{ns}:*")}
    assert made == expected
    assert ns == ProjectionKeys(prefix).namespace(1)
