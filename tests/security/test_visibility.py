"""The one place that decides what a customer sees of an event (`api.graphql.visibility`)."""

from __future__ import annotations

from api.graphql.visibility import visible_data, visible_metadata
from api.http.auth import Principal, Role

CUSTOMER = Principal(sub="c-1", role=Role.CUSTOMER, expires_at=0.0)
STAFF = Principal(sub="alice", role=Role.STAFF, expires_at=0.0)
STORED = {
    "schemaVersion": 2,
    "occurredAt": "2026-01-01T00:00:00+00:00",
    "$correlationId": "corr-1",
    "$causationId": "corr-1",
    "actor": "alice",
    "internalNote": "checked by the risk team",
}


def test_a_customer_sees_the_contract_metadata_with_staff_actors_anonymous() -> None:
    shown = visible_metadata(STORED, CUSTOMER)
    assert shown == {
        "schemaVersion": 2,
        "occurredAt": "2026-01-01T00:00:00+00:00",
        "$correlationId": "corr-1",
        "$causationId": "corr-1",
        "actor": "staff",
    }


def test_a_customer_sees_its_own_name_and_the_system() -> None:
    assert visible_metadata({**STORED, "actor": "c-1"}, CUSTOMER)["actor"] == "c-1"
    assert visible_metadata({**STORED, "actor": "system"}, CUSTOMER)["actor"] == "system"


def test_staff_see_everything_stored() -> None:
    assert visible_metadata(STORED, STAFF) == STORED
    data = {"reason": "chargeback risk"}
    assert visible_data("OrderCancelled", data, STORED, STAFF) == data


def test_only_reasons_staff_wrote_are_replaced() -> None:
    data = {"reason": "chargeback risk"}
    assert visible_data("OrderCancelled", data, STORED, CUSTOMER) == {
        "reason": "Cancelled by the shop."
    }
    own = {**STORED, "actor": "c-1"}
    assert visible_data("OrderCancelled", data, own, CUSTOMER) == data
    shipped = {"trackingId": "t-1", "carrier": "DHL"}
    assert visible_data("OrderShipped", shipped, STORED, CUSTOMER) == shipped
