"""The upcaster registry and the codec's decode: legacy shapes, newer versions, unknown types."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from application.codec import decode_record
from domain.events import LineItem, OrderPlaced, PaymentTaken
from domain.upcasting import (
    CURRENT_SCHEMA_VERSION,
    REGISTRY,
    MalformedLegacyEvent,
    UnknownSchemaVersion,
    UpcastContext,
    UpcasterRegistry,
)
from tests.integration.upcasting.legacy import LEGACY_PLACED_DATA, UPCAST_ITEMS, recorded


@pytest.mark.parametrize("metadata", [b"{}", b'{"schemaVersion": 1}', b"", b'{"actor": "old"}'])
def test_legacy_order_placed_reads_as_version_2(metadata: bytes) -> None:
    decoded = decode_record(recorded("OrderPlaced", LEGACY_PLACED_DATA, metadata))

    assert decoded.data == {
        "orderId": "legacy-1",
        "customerId": "cust-legacy",
        "items": UPCAST_ITEMS,
        "total": "25.10",
    }
    assert decoded.metadata["schemaVersion"] == CURRENT_SCHEMA_VERSION
    assert decoded.event == OrderPlaced(
        order_id="legacy-1",
        customer_id="cust-legacy",
        items=(
            LineItem(product_id="p-1", name="Unknown", price=Decimal(0), qty=1),
            LineItem(product_id="p-2", name="Unknown", price=Decimal(0), qty=1),
        ),
        total=Decimal("25.10"),
    )


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("0.1", "0.1"),
        ("25.10", "25.10"),
        ("7", "7"),
        ("0", "0"),
        ("1e2", "100"),
        ("12.5E-1", "1.25"),
        (
            "123456789012345678901234567890.000000000000000001",
            "123456789012345678901234567890.000000000000000001",
        ),
    ],
)
def test_legacy_total_is_the_exact_decimal_of_the_json_text(number: str, text: str) -> None:
    data = b'{"customerId": "c", "items": ["p"], "total": %s}' % number.encode()

    decoded = decode_record(recorded("OrderPlaced", data))

    assert decoded.data["total"] == text
    assert isinstance(decoded.event, OrderPlaced)
    assert decoded.event.total == Decimal(text)


def test_order_id_comes_from_the_stream_name() -> None:
    decoded = decode_record(recorded("OrderPlaced", LEGACY_PLACED_DATA, stream="order-a.b:c-d_1"))

    assert decoded.data["orderId"] == "a.b:c-d_1"


def test_current_events_pass_unchanged() -> None:
    data = b'{"amount": "10.00", "method": "card", "transactionId": "t-1"}'

    decoded = decode_record(recorded("PaymentTaken", data, b'{"schemaVersion": 2}', version=2))

    assert decoded.data == {"amount": "10.00", "method": "card", "transactionId": "t-1"}
    assert decoded.event == PaymentTaken(
        amount=Decimal("10.00"), method="card", transaction_id="t-1"
    )


def test_legacy_types_without_a_step_keep_their_shape_and_money_stays_exact() -> None:
    # No PaymentTaken step is registered: its shape did not change at version 2. A number left
    # in a legacy payload still reads exactly, as a decimal string like all money today.
    data = b'{"amount": 0.30, "method": "card", "transactionId": "t-1"}'

    decoded = decode_record(recorded("PaymentTaken", data, b"{}", version=2))

    assert decoded.data == {"amount": "0.30", "method": "card", "transactionId": "t-1"}
    assert decoded.metadata == {"schemaVersion": CURRENT_SCHEMA_VERSION}


@pytest.mark.parametrize("version", [3, 99, 0, -1, "2", True, 2.5])
def test_a_schema_version_this_code_does_not_know_is_never_guessed(version: object) -> None:
    metadata = b'{"schemaVersion": %s}' % (
        b"true" if version is True else repr(version).replace("'", '"').encode()
    )

    with pytest.raises(UnknownSchemaVersion) as raised:
        decode_record(recorded("OrderPlaced", LEGACY_PLACED_DATA, metadata))

    assert raised.value.event_type == "OrderPlaced"
    assert raised.value.schema_version == version
    assert "OrderPlaced" in str(raised.value)
    assert str(CURRENT_SCHEMA_VERSION) in str(raised.value)


def test_integral_float_schema_versions_are_read_as_whole_numbers() -> None:
    decoded = decode_record(recorded("OrderPlaced", LEGACY_PLACED_DATA, b'{"schemaVersion": 1.0}'))

    assert decoded.data["items"] == UPCAST_ITEMS


@pytest.mark.parametrize(
    "data",
    [
        b'{"customerId": "c", "items": [{"id": "p"}], "total": 1}',
        b'{"customerId": "c", "items": "p", "total": 1}',
        b'{"customerId": 7, "items": ["p"], "total": 1}',
        b'{"customerId": "c", "items": ["p"], "total": "1.00"}',
        b'{"customerId": "c", "items": ["p"]}',
    ],
)
def test_malformed_legacy_payloads_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(MalformedLegacyEvent):
        decode_record(recorded("OrderPlaced", data))


def test_unknown_types_are_shown_raw_and_logged_once_per_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="application.codec")
    event_type = "LoyaltyPointsGranted-test-registry"

    first = decode_record(recorded(event_type, b'{"points": 1.5}', b'{"schemaVersion": 7}'))
    second = decode_record(recorded(event_type, b"not json", version=2))

    assert first.event is None
    assert first.data == {"points": 1.5}
    assert first.metadata == {"schemaVersion": 7}
    assert second.data == {"raw": "not json"}
    warnings = [r for r in caplog.records if event_type in r.getMessage()]
    assert len(warnings) == 1


def test_steps_chain_from_the_written_version_to_the_current_one() -> None:
    registry = UpcasterRegistry(current_version=4)
    calls: list[int] = []

    def step(version: int) -> Any:
        def upcaster(data: dict[str, Any], context: UpcastContext) -> dict[str, Any]:
            calls.append(version)
            return {**data, f"v{version + 1}": context.stream}

        return upcaster

    for version in (1, 2, 3):
        registry.register("Thing", version)(step(version))

    from_v2 = registry.upcast("Thing", 2, {}, stream="s")
    assert from_v2 == {"v3": "s", "v4": "s"}
    assert calls == [2, 3]
    assert registry.upcast("Thing", 4, {"a": 1}, stream="s") == {"a": 1}
    assert registry.upcast("Other", 1, {"a": 1}, stream="s") == {"a": 1}
    with pytest.raises(UnknownSchemaVersion):
        registry.upcast("Thing", 5, {}, stream="s")


def test_a_step_is_registered_once_and_only_below_the_current_version() -> None:
    registry = UpcasterRegistry(current_version=2)
    registry.register("Thing", 1)(lambda data, _: data)

    with pytest.raises(ValueError, match="exists already"):
        registry.register("Thing", 1)(lambda data, _: data)
    with pytest.raises(ValueError, match="no step"):
        registry.register("Thing", 2)


def test_the_registry_holds_the_legacy_order_placed_step() -> None:
    assert ("OrderPlaced", 1) in REGISTRY.steps()
    assert REGISTRY.current_version == CURRENT_SCHEMA_VERSION
