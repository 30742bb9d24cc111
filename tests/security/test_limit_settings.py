"""Limits and the introspection policy come from the environment, refusing nonsense at start."""

from __future__ import annotations

import pytest

from api.http.limits import Introspection, QueryLimits, RequestLimits, env_name
from api.settings.config import Settings


def test_every_limit_has_a_variable_and_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.query_limits == QueryLimits()
    assert settings.request_limits == RequestLimits()
    assert settings.query_limits.introspection is Introspection.STAFF
    assert env_name("max_cost") == "MAX_QUERY_COST"
    assert env_name("max_body_bytes") == "MAX_BODY_BYTES"


def test_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MAX_QUERY_COST": "1000",
            "MAX_QUERY_DEPTH": "7",
            "MAX_BODY_BYTES": "2048",
            "MAX_WS_MESSAGE_BYTES": "4096",
            "INTROSPECTION": "OFF",
        }
    )
    assert settings.query_limits.max_cost == 1000
    assert settings.query_limits.max_depth == 7
    assert settings.query_limits.introspection is Introspection.OFF
    assert settings.request_limits.max_body_bytes == 2048
    assert settings.request_limits.max_ws_message_bytes == 4096


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_QUERY_COST", "lots"), ("MAX_BODY_BYTES", "0"), ("INTROSPECTION", "customers")],
)
def test_nonsense_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
