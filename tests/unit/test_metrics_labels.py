"""METRICS_PORT is read with the other settings and refused by name when it is no port; the
operation names clients send become metric labels only once seen succeeding, and only so many;
command outcomes are this code's own names."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from api.settings.config import Settings, SettingsError
from domain.errors import ConcurrencyConflict, OrderNotFound
from metrics.instruments import command_outcome, count_budget_refusal, subscription_label
from metrics.operations import ANONYMOUS, OTHER, OperationNames

SECRET = "s" * 32


def test_metrics_port_is_a_setting() -> None:
    assert Settings.from_env({"JWT_SECRET": SECRET}).metrics_port is None
    assert Settings.from_env({"JWT_SECRET": SECRET, "METRICS_PORT": "9100"}).metrics_port == 9100


@pytest.mark.parametrize("value", ["0", "65536", "http", "-1", "9100.5"])
def test_a_metrics_port_that_is_no_port_is_refused_by_name(value: str) -> None:
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        Settings.from_env({"JWT_SECRET": SECRET, "METRICS_PORT": value})


def test_operation_names_become_labels_only_once_seen_succeeding() -> None:
    names = OperationNames(cap=2)
    assert names.label("Place", "BAD_USER_INPUT") == OTHER  # never seen to succeed
    assert names.label("Place", "ok") == "Place"
    assert names.label("Place", "UNAVAILABLE") == "Place"  # known now, whatever the outcome
    assert names.label("", "ok") == ANONYMOUS
    assert names.label("bad name!", "ok") == OTHER
    assert names.label("Second", "ok") == "Second"
    assert names.label("Third", "ok") == OTHER  # past the cap
    assert names.label("x" * 65, "ok") == OTHER


def test_command_outcomes_and_subscription_fields_are_bounded() -> None:
    assert command_outcome(None) == "accepted"
    assert command_outcome(ConcurrencyConflict(1, 2)) == "conflict"
    assert command_outcome(OrderNotFound("o-1")) == "not_found"
    assert command_outcome(RuntimeError("boom")) == "error"
    assert subscription_label("ordersUpdated") == "ordersUpdated"
    assert subscription_label("somethingElse") == OTHER
    assert subscription_label(None) == OTHER


def test_budget_refusals_are_counted_by_budget() -> None:
    before = REGISTRY.get_sample_value("orders_budget_refusals_total", {"budget": "requests"})
    count_budget_refusal("requests")
    count_budget_refusal("requests")
    after = REGISTRY.get_sample_value("orders_budget_refusals_total", {"budget": "requests"})
    assert after == (before or 0) + 2
