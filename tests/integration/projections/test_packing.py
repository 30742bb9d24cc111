"""The projector's packing of a stored event equals the reference decoding's, errors included."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.codec import DECODE_ERRORS
from application.timestamps import format_timestamp
from domain.events import (
    ItemAdded,
    ItemRemoved,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentTaken,
)
from eventstore.port import RecordedEvent
from projections.decoding import to_change
from projections.packing import packed_change
from projections.redis_store import change_args
from tests.integration.projections.factories import Log, item

MONEY = st.sampled_from(["0.00", "0.99", "12.5", "100.010", "1E+3", "7", "-1.25", "1e-7"])
TEXT = st.text(max_size=8)
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), TEXT, MONEY
)


def reference(record: RecordedEvent) -> list[str] | type[BaseException]:
    try:
        return change_args(to_change(record))
    except DECODE_ERRORS as error:
        return type(error)


def packed(record: RecordedEvent) -> list[str] | type[BaseException]:
    try:
        return packed_change(record)
    except DECODE_ERRORS as error:
        return type(error)


line_items = st.builds(
    item, st.sampled_from(["p1", "p2", "x"]), MONEY, st.integers(1, 5), TEXT
).filter(lambda i: i.price >= 0)
events: st.SearchStrategy[OrderEvent] = st.one_of(
    st.builds(
        OrderPlaced,
        order_id=st.just("o"),
        customer_id=TEXT,
        items=st.lists(line_items, max_size=3).map(tuple),
        total=MONEY.map(Decimal),
    ),
    st.builds(PaymentTaken, amount=MONEY.map(Decimal), method=TEXT, transaction_id=TEXT),
    st.builds(OrderCancelled, reason=TEXT),
    st.builds(OrderShipped, tracking_id=TEXT, carrier=TEXT),
    st.builds(ItemAdded, item=line_items, total=MONEY.map(Decimal)),
    st.builds(ItemRemoved, product_id=TEXT, total=MONEY.map(Decimal)),
)


def recorded(event: OrderEvent) -> RecordedEvent:
    log = Log(start=2**62)
    return log.record("o-1", event)


@settings(max_examples=300, deadline=None)
@given(event=events)
def test_every_current_event_packs_as_the_reference_does(event: OrderEvent) -> None:
    record = recorded(event)
    assert packed(record) == reference(record)
    assert isinstance(packed_change(record), list)


def mutate(payload: Any, path: list[int], value: Any, drop: bool) -> Any:
    """`payload` with the node `path` picks (indices into sorted keys / list items) replaced by
    `value`, or dropped."""
    if not path or not isinstance(payload, dict | list) or not payload:
        return value
    if isinstance(payload, dict):
        keys = sorted(payload)
        key = keys[path[0] % len(keys)]
        copy = dict(payload)
        if drop and len(path) == 1:
            del copy[key]
        else:
            copy[key] = mutate(copy[key], path[1:], value, drop)
        return copy
    index = path[0] % len(payload)
    items = list(payload)
    items[index] = mutate(items[index], path[1:], value, drop)
    return items


@settings(max_examples=400, deadline=None)
@given(
    event=events,
    path=st.lists(st.integers(0, 9), min_size=1, max_size=3),
    value=JSON_VALUES,
    drop=st.booleans(),
    in_metadata=st.booleans(),
)
def test_a_malformed_event_is_refused_or_read_as_the_reference_does(
    event: OrderEvent, path: list[int], value: Any, drop: bool, in_metadata: bool
) -> None:
    record = recorded(event)
    if in_metadata:
        metadata = orjson.dumps(mutate(orjson.loads(record.metadata), path, value, drop))
        broken = replace(record, metadata=metadata)
    else:
        broken = replace(
            record, data=orjson.dumps(mutate(orjson.loads(record.data), path, value, drop))
        )
    assert packed(broken) == reference(broken)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "GiftWrapped"},  # unknown: only the version moves
        {"stream": "customer-1"},  # not an order stream
        {"data": b""},
        {"data": b"[1, 2]"},
        {"data": b"{not json"},
        {"metadata": b""},
        {"metadata": b'{"schemaVersion": 1}'},  # legacy: upcast by the reference path
        {"metadata": b'{"schemaVersion": 3}'},  # newer than this code
        {"metadata": b'{"schemaVersion": 2.0, "occurredAt": "yesterday"}'},
        {"metadata": b'{"schemaVersion": true}'},
    ],
)
def test_what_the_fast_path_does_not_read_takes_the_reference_path(change: dict[str, Any]) -> None:
    record = replace(recorded(OrderShipped(tracking_id="T", carrier="UPS")), version=2, **change)
    assert packed(record) == reference(record)


EXAMPLES: list[OrderEvent] = [
    OrderPlaced(order_id="o", customer_id="c", items=(item("p1"),), total=Decimal("10.00")),
    PaymentTaken(amount=Decimal("10.00"), method="card", transaction_id="t"),
    OrderCancelled(reason="no"),
    OrderShipped(tracking_id="T", carrier="UPS"),
    ItemAdded(item=item("p2", "2.50", 2), total=Decimal("15.00")),
    ItemRemoved(product_id="p1", total=Decimal("5.00")),
]


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def without_each_field(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`data` missing one field at a time, a line item's fields included."""
    for key in data:
        yield key, _without(data, key)
    if "item" in data:
        for inner in data["item"]:
            yield f"item.{inner}", {**data, "item": _without(data["item"], inner)}
    if "items" in data:
        for inner in data["items"][0]:
            yield f"items.{inner}", {**data, "items": [_without(data["items"][0], inner)]}


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_event_missing_any_field_is_refused_as_the_reference_refuses_it(
    event: OrderEvent,
) -> None:
    record = recorded(event)
    for missing, data in without_each_field(orjson.loads(record.data)):
        broken = replace(record, data=orjson.dumps(data))
        assert reference(broken) is KeyError, missing
        assert packed(broken) is KeyError, missing


TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(format_timestamp),
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat()),
    # the codec's shape with any digits: days and clocks that do not exist, zero microseconds
    st.from_regex(
        r"\A[0-9]{4}-[0-3][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9]\.0{0,6}[0-9]{0,6}Z\Z"
    ),
    st.text(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(occurred_at=TIMES)
def test_every_occurred_at_packs_as_the_reference_does(occurred_at: str) -> None:
    record = recorded(PaymentTaken(amount=Decimal("1.00"), method="card", transaction_id="t"))
    metadata = {**orjson.loads(record.metadata), "occurredAt": occurred_at}
    timed = replace(record, metadata=orjson.dumps(metadata))
    assert packed(timed) == reference(timed)
