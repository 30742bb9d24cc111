"""The budget mechanism: counts per key that forget idle keys, token buckets, the quiet log of
who was limited, and the pricing of a mutation by its root fields."""

from __future__ import annotations

import logging

import pytest
from graphql import parse

from api.graphql.command_rate import root_fields
from api.http.budgets import Budget, LimitedLog, RateBudget, RateLimited


def test_a_budget_refuses_past_its_limit_per_key_and_forgets_idle_keys() -> None:
    budget = Budget("requests", 2)
    assert budget.try_acquire("customer:a")
    assert budget.try_acquire("customer:a")
    assert not budget.try_acquire("customer:a")
    assert budget.try_acquire("customer:b")  # another identity has its own
    budget.release("customer:a")
    assert budget.try_acquire("customer:a")
    for key in ("customer:a", "customer:a", "customer:b"):
        budget.release(key)
    assert budget.keys == 0  # nothing held, nothing kept


def test_a_token_bucket_spends_refills_and_tells_how_long_to_wait() -> None:
    now = [0.0]
    bucket = RateBudget("commands", rate=10, burst=60, clock=lambda: now[0])
    assert bucket.try_spend("customer:a", 30) == 0.0
    assert bucket.try_spend("customer:a", 30) == 0.0
    wait = bucket.try_spend("customer:a", 30)
    assert wait == pytest.approx(3.0)  # 30 tokens at 10 a second
    assert bucket.try_spend("customer:b", 30) == 0.0  # another identity's bucket is full
    now[0] += 3.0
    assert bucket.try_spend("customer:a", 30) == 0.0


def test_a_request_larger_than_the_bucket_waits_for_a_full_one_and_leaves_a_debt() -> None:
    now = [0.0]
    bucket = RateBudget("commands", rate=10, burst=20, clock=lambda: now[0])
    assert bucket.try_spend("customer:a", 31) == 0.0  # a full bucket lets it through
    assert bucket.try_spend("customer:a", 1) == pytest.approx(1.2)  # 11 owed, then 1


def test_full_buckets_are_forgotten() -> None:
    now = [0.0]
    bucket = RateBudget("commands", rate=10, burst=60, clock=lambda: now[0])
    for n in range(RateBudget.SWEEP_EVERY - 1):
        bucket.try_spend(f"customer:{n}")
    assert bucket.keys == RateBudget.SWEEP_EVERY - 1
    now[0] += 1.0  # every bucket has refilled
    bucket.try_spend("customer:last")
    assert bucket.keys <= 1


def test_who_was_limited_is_logged_once_per_period_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = LimitedLog(every=10.0, clock=lambda: now[0])
    budget = Budget("requests", 1, log)
    assert budget.try_acquire("customer:a")
    with caplog.at_level(logging.WARNING, logger="api.http.budgets"):
        for _ in range(50):
            budget.try_acquire("customer:a")
        now[0] += 10.0
        budget.try_acquire("customer:a")
    assert [r.getMessage() for r in caplog.records] == [
        "event=rate_limited identity=customer:a budget=requests count=1",
        "event=rate_limited identity=customer:a budget=requests count=50",
    ]


def test_the_refusal_says_when_to_retry() -> None:
    error = RateLimited("commands", 2.1)
    assert error.extensions == {"code": "RATE_LIMITED", "retryAfter": 3, "budget": "commands"}
    assert RateLimited("requests", 0.0).retry_after == 1  # never 0


@pytest.mark.parametrize(
    ("document", "fields"),
    [
        ("mutation { a: placeOrder { x } b: placeOrder { x } }", 2),
        ("mutation { placeOrder { x } placeOrder { x } }", 1),  # one key: merged, run once
        (
            "mutation { ...F ...F } "
            "fragment F on Mutation { a: cancelOrder { x } b: shipOrder { x } }",
            2,
        ),
        ("mutation { ... on Mutation { a: addItem { x } } __typename }", 1),
        ("mutation M { a: placeOrder { x } } query Q { b: orders { x } }", 1),
    ],
)
def test_a_mutation_is_priced_by_its_root_fields(document: str, fields: int) -> None:
    name = "M" if "mutation M" in document else None
    assert root_fields(parse(document), name) == fields
